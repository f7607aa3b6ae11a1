//! A blocking CRI v1 client over a unix socket: tonic on a small tokio
//! runtime of its own, so the adapter and the suite's test threads stay
//! synchronous (each call is one `block_on`).

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::runtime::Error;

/// How long one management call may take; RunPodSandbox sets up CNI.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Client {
    rt: tokio::runtime::Runtime,
    channel: Channel,
    /// RunPodSandbox's `runtime_handler` (Kubernetes' RuntimeClass);
    /// empty for the runtime's default.
    handler: String,
}

/// Whether a call failed because the object does not exist.
pub fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Command { code, .. } if *code == tonic::Code::NotFound as i32)
}

impl Client {
    /// Connects to the runtime's CRI socket and checks it answers `Version`.
    pub fn connect(socket: &Path) -> Result<(Client, cri::VersionResponse), Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cri-client")
            .enable_all()
            .build()
            .map_err(|e| Error::Other(format!("cannot start the CRI client's runtime: {e}")))?;
        let path = socket.to_path_buf();
        // tonic wants a URI; the connector ignores it and dials the socket.
        let endpoint = Endpoint::from_static("http://cri.socket").connect_timeout(CALL_TIMEOUT);
        let channel = rt
            .block_on(
                endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                })),
            )
            .map_err(|e| {
                Error::Other(format!(
                    "cannot connect to the CRI socket {}: {e}",
                    socket.display()
                ))
            })?;
        let client = Client {
            rt,
            channel,
            handler: String::new(),
        };
        let mut c = client.runtime();
        let version = client.call("Version", CALL_TIMEOUT, async move {
            c.version(cri::VersionRequest {
                version: "v1".into(),
            })
            .await
        })?;
        Ok((client, version))
    }

    /// Every sandbox runs with `handler` (a runtime handler the runtime's
    /// configuration names, such as crun beside runc).
    pub fn with_handler(mut self, handler: &str) -> Client {
        self.handler = handler.to_string();
        self
    }

    /// The runtime's configuration (its cgroup driver); `None` when the
    /// runtime predates the call (containerd 1.6 answers Unimplemented).
    pub fn runtime_config(&self) -> Result<Option<cri::RuntimeConfigResponse>, Error> {
        let mut c = self.runtime();
        let reply = self.call("RuntimeConfig", CALL_TIMEOUT, async move {
            c.runtime_config(cri::RuntimeConfigRequest {}).await
        });
        match reply {
            Ok(r) => Ok(Some(r)),
            Err(Error::Command { code, .. }) if code == tonic::Code::Unimplemented as i32 => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The runtime's verbose status (conditions and its own info).
    pub fn status(&self) -> Result<cri::StatusResponse, Error> {
        let mut c = self.runtime();
        self.call("Status", CALL_TIMEOUT, async move {
            c.status(cri::StatusRequest { verbose: true }).await
        })
    }

    fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
    }

    fn images(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel.clone())
    }

    fn call<T, F>(&self, what: &str, timeout: Duration, call: F) -> Result<T, Error>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let command = format!("CRI {what}");
        match self
            .rt
            .block_on(async { tokio::time::timeout(timeout, call).await })
        {
            Err(_) => Err(Error::Timeout {
                command,
                after: timeout,
            }),
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) if status.code() == tonic::Code::DeadlineExceeded => {
                Err(Error::Timeout {
                    command,
                    after: timeout,
                })
            }
            Ok(Err(status)) => Err(Error::Command {
                command,
                code: status.code() as i32,
                stderr: format!("{:?}: {}", status.code(), status.message()),
            }),
        }
    }

    pub fn run_pod_sandbox(&self, config: cri::PodSandboxConfig) -> Result<String, Error> {
        let mut c = self.runtime();
        let request = cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: self.handler.clone(),
        };
        let r = self.call("RunPodSandbox", CALL_TIMEOUT, async move {
            c.run_pod_sandbox(request).await
        })?;
        Ok(r.pod_sandbox_id)
    }

    pub fn pod_sandbox_status(&self, id: &str) -> Result<Option<cri::PodSandboxStatus>, Error> {
        let mut c = self.runtime();
        let request = cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        };
        match self.call("PodSandboxStatus", CALL_TIMEOUT, async move {
            c.pod_sandbox_status(request).await
        }) {
            Ok(r) => Ok(r.status),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn stop_pod_sandbox(&self, id: &str) -> Result<(), Error> {
        let mut c = self.runtime();
        let request = cri::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.call("StopPodSandbox", CALL_TIMEOUT, async move {
            c.stop_pod_sandbox(request).await
        })
        .map(drop)
    }

    pub fn remove_pod_sandbox(&self, id: &str) -> Result<(), Error> {
        let mut c = self.runtime();
        let request = cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.call("RemovePodSandbox", CALL_TIMEOUT, async move {
            c.remove_pod_sandbox(request).await
        })
        .map(drop)
    }

    pub fn list_pod_sandboxes(&self) -> Result<Vec<cri::PodSandbox>, Error> {
        let mut c = self.runtime();
        let r = self.call("ListPodSandbox", CALL_TIMEOUT, async move {
            c.list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
                .await
        })?;
        Ok(r.items)
    }

    pub fn create_container(
        &self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
        sandbox_config: cri::PodSandboxConfig,
    ) -> Result<String, Error> {
        let mut c = self.runtime();
        let request = cri::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.into(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let r = self.call("CreateContainer", CALL_TIMEOUT, async move {
            c.create_container(request).await
        })?;
        Ok(r.container_id)
    }

    pub fn start_container(&self, id: &str) -> Result<(), Error> {
        let mut c = self.runtime();
        let request = cri::StartContainerRequest {
            container_id: id.into(),
        };
        self.call("StartContainer", CALL_TIMEOUT, async move {
            c.start_container(request).await
        })
        .map(drop)
    }

    /// SIGTERM (or the image's stop signal), SIGKILL after `grace_seconds`.
    pub fn stop_container(&self, id: &str, grace_seconds: u32) -> Result<(), Error> {
        let mut c = self.runtime();
        let request = cri::StopContainerRequest {
            container_id: id.into(),
            timeout: i64::from(grace_seconds),
        };
        let timeout = CALL_TIMEOUT + Duration::from_secs(grace_seconds.into());
        self.call("StopContainer", timeout, async move {
            c.stop_container(request).await
        })
        .map(drop)
    }

    pub fn remove_container(&self, id: &str) -> Result<(), Error> {
        let mut c = self.runtime();
        let request = cri::RemoveContainerRequest {
            container_id: id.into(),
        };
        self.call("RemoveContainer", CALL_TIMEOUT, async move {
            c.remove_container(request).await
        })
        .map(drop)
    }

    pub fn container_status(&self, id: &str) -> Result<Option<cri::ContainerStatus>, Error> {
        let mut c = self.runtime();
        let request = cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        match self.call("ContainerStatus", CALL_TIMEOUT, async move {
            c.container_status(request).await
        }) {
            Ok(r) => Ok(r.status),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn list_containers(&self) -> Result<Vec<cri::Container>, Error> {
        let mut c = self.runtime();
        let r = self.call("ListContainers", CALL_TIMEOUT, async move {
            c.list_containers(cri::ListContainersRequest { filter: None })
                .await
        })?;
        Ok(r.containers)
    }

    pub fn exec_sync(
        &self,
        id: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<cri::ExecSyncResponse, Error> {
        let mut c = self.runtime();
        let request = cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: argv.to_vec(),
            // Whole seconds, rounded up: 0 would mean no timeout at all.
            timeout: timeout.as_secs_f64().ceil().max(1.0) as i64,
        };
        // The runtime enforces the timeout; ours only catches a hung call.
        self.call("ExecSync", timeout + Duration::from_secs(10), async move {
            c.exec_sync(request).await
        })
    }

    /// The runtime's ImageStatus of `image`: `None` when it is not there.
    fn image_status(&self, image: &str) -> Result<Option<cri::Image>, Error> {
        let mut c = self.images();
        let request = cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            verbose: false,
        };
        let r = self.call("ImageStatus", CALL_TIMEOUT, async move {
            c.image_status(request).await
        })?;
        Ok(r.image)
    }

    /// The user an image runs as, as the runtime reports it: its uid when
    /// numeric, else its user name. `None` when the image is not there.
    pub fn image_user(&self, image: &str) -> Result<Option<(Option<i64>, String)>, Error> {
        Ok(self
            .image_status(image)?
            .map(|i| (i.uid.map(|u| u.value), i.username)))
    }

    /// Pulls `image` into the runtime's store (the registry and how to
    /// reach it are the runtime's configuration): its image ref.
    pub fn pull_image(
        &self,
        image: &str,
        sandbox: &cri::PodSandboxConfig,
    ) -> Result<String, Error> {
        let mut c = self.images();
        let request = cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            auth: None,
            sandbox_config: Some(sandbox.clone()),
        };
        let r = self.call("PullImage", CALL_TIMEOUT, async move {
            c.pull_image(request).await
        })?;
        Ok(r.image_ref)
    }

    /// Whether the runtime's image store holds `image`.
    pub fn image_present(&self, image: &str) -> Result<bool, Error> {
        Ok(self.image_status(image)?.is_some())
    }
}
