//! Resource limits of one cgroup and Kubernetes' CPU conversions.
//!
//! The conversions follow the kubelet: CFS quota from the CPU limit over a
//! 100 ms period, `cpu.shares` from the request, and on cgroup v2 the
//! shares→weight mapping that runc and the kubelet share.

use serde::{Deserialize, Serialize};

/// CFS period the kubelet uses for every container (100 ms).
pub const DEFAULT_CPU_PERIOD_US: u64 = 100_000;
/// The kernel refuses CFS quotas below 1 ms, so the kubelet rounds up to it.
pub const MIN_CPU_QUOTA_US: i64 = 1_000;
/// Bounds of v1 `cpu.shares`; the kernel silently clamps to them.
pub const MIN_CPU_SHARES: u64 = 2;
pub const MAX_CPU_SHARES: u64 = 262_144;
/// Bounds of v2 `cpu.weight`.
pub const MIN_CPU_WEIGHT: u64 = 1;
pub const MAX_CPU_WEIGHT: u64 = 10_000;

/// Limits of one cgroup. `None` leaves the kernel's default (unlimited, or
/// the default share) in place.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Hard memory limit in bytes (`memory.limit_in_bytes` / `memory.max`).
    /// The kernel stores whole pages, so it may read back rounded down.
    pub memory_bytes: Option<i64>,
    /// CFS quota per period in µs (`cpu.cfs_quota_us` / first field of `cpu.max`).
    pub cpu_quota_us: Option<i64>,
    /// CFS period in µs (`cpu.cfs_period_us` / second field of `cpu.max`).
    pub cpu_period_us: Option<u64>,
    /// v1 `cpu.shares`; on v2 written as `cpu.weight` via [`weight_from_shares`].
    pub cpu_shares: Option<u64>,
    /// Maximum number of tasks (`pids.max`); negative means unlimited.
    pub pids_max: Option<i64>,
}

impl Limits {
    /// Kubernetes' conversion of a container's CPU limit and request (in
    /// millicores) plus memory and pids limits.
    ///
    /// - quota = `limit * 100000 / 1000` µs per 100000 µs, at least 1000 µs;
    ///   no limit (or 0) means no quota;
    /// - shares = `max(2, millis * 1024 / 1000)` from the request, or from the
    ///   limit when there is no request (Kubernetes defaults request to limit);
    ///   neither gives `None` (the kernel default share).
    pub fn from_millis(
        limit_millicpu: Option<i64>,
        request_millicpu: Option<i64>,
        memory_bytes: Option<i64>,
        pids_max: Option<i64>,
    ) -> Limits {
        let (cpu_quota_us, cpu_period_us) = match limit_millicpu {
            Some(millis) if millis > 0 => (
                Some(quota_from_millis(millis, DEFAULT_CPU_PERIOD_US)),
                Some(DEFAULT_CPU_PERIOD_US),
            ),
            _ => (None, None),
        };
        Limits {
            memory_bytes,
            cpu_quota_us,
            cpu_period_us,
            cpu_shares: request_millicpu.or(limit_millicpu).map(shares_from_millis),
            pids_max,
        }
    }

    /// The v2 `cpu.weight` these limits ask for.
    pub fn cpu_weight(&self) -> Option<u64> {
        self.cpu_shares.map(weight_from_shares)
    }
}

/// CFS quota for `millis` millicores over `period_us`, at least [`MIN_CPU_QUOTA_US`].
pub fn quota_from_millis(millis: i64, period_us: u64) -> i64 {
    // i128: millis * period cannot overflow whatever the manifest says.
    let quota = i128::from(millis) * i128::from(period_us) / 1000;
    let quota = i64::try_from(quota).unwrap_or(i64::MAX);
    quota.max(MIN_CPU_QUOTA_US)
}

/// `cpu.shares` for `millis` millicores, clamped to what the kernel accepts.
pub fn shares_from_millis(millis: i64) -> u64 {
    let shares = i128::from(millis.max(0)) * 1024 / 1000;
    let shares = u64::try_from(shares).unwrap_or(u64::MAX);
    shares.clamp(MIN_CPU_SHARES, MAX_CPU_SHARES)
}

/// v2 `cpu.weight` for v1 `cpu.shares`: maps [2, 262144] linearly onto
/// [1, 10000] (the formula runc and the kubelet use).
pub fn weight_from_shares(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_CPU_SHARES, MAX_CPU_SHARES);
    1 + ((shares - MIN_CPU_SHARES) * (MAX_CPU_WEIGHT - 1)) / (MAX_CPU_SHARES - MIN_CPU_SHARES)
}

/// The smallest `cpu.shares` whose weight is `weight`. The mapping loses
/// precision (about 26 shares per weight step), so this is how a v2 weight is
/// reported back as shares.
pub fn shares_from_weight(weight: u64) -> u64 {
    let weight = weight.clamp(MIN_CPU_WEIGHT, MAX_CPU_WEIGHT);
    let span = MAX_CPU_SHARES - MIN_CPU_SHARES;
    let steps = MAX_CPU_WEIGHT - 1;
    MIN_CPU_SHARES + ((weight - 1) * span).div_ceil(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const MI: i64 = 1024 * 1024;

    #[rstest]
    // limit, request → quota, period, shares
    #[case::quarter_cpu(Some(250), Some(250), Some(25_000), Some(100_000), Some(256))]
    #[case::one_cpu(Some(1000), None, Some(100_000), Some(100_000), Some(1024))]
    #[case::request_differs(Some(2000), Some(500), Some(200_000), Some(100_000), Some(512))]
    #[case::min_quota(Some(1), Some(1), Some(1_000), Some(100_000), Some(2))]
    #[case::nine_millis(Some(9), None, Some(1_000), Some(100_000), Some(9))]
    #[case::request_only(None, Some(100), None, None, Some(102))]
    #[case::zero_request(None, Some(0), None, None, Some(2))]
    #[case::zero_limit_is_unlimited(Some(0), None, None, None, Some(2))]
    #[case::nothing(None, None, None, None, None)]
    #[case::huge(
        Some(1_000_000_000),
        None,
        Some(100_000_000_000),
        Some(100_000),
        Some(MAX_CPU_SHARES)
    )]
    fn from_millis_matches_kubernetes(
        #[case] limit: Option<i64>,
        #[case] request: Option<i64>,
        #[case] quota: Option<i64>,
        #[case] period: Option<u64>,
        #[case] shares: Option<u64>,
    ) {
        let l = Limits::from_millis(limit, request, Some(64 * MI), Some(64));
        assert_eq!(l.cpu_quota_us, quota, "quota");
        assert_eq!(l.cpu_period_us, period, "period");
        assert_eq!(l.cpu_shares, shares, "shares");
        assert_eq!(l.memory_bytes, Some(64 * MI));
        assert_eq!(l.pids_max, Some(64));
    }

    #[rstest]
    #[case(2, 1)]
    #[case(0, 1)] // clamped like the kernel clamps shares
    #[case(3, 1)]
    #[case(256, 10)]
    #[case(1024, 39)]
    #[case(2048, 79)]
    #[case(262_144, 10_000)]
    #[case(1_000_000, 10_000)]
    fn weight_formula(#[case] shares: u64, #[case] weight: u64) {
        // 1 + ((shares - 2) * 9999) / 262142, computed independently here.
        let s = shares.clamp(2, 262_144);
        assert_eq!(1 + ((s - 2) * 9999) / 262_142, weight, "table entry");
        assert_eq!(weight_from_shares(shares), weight);
    }

    #[test]
    fn shares_from_weight_is_the_smallest_preimage() {
        for weight in [1, 2, 10, 39, 100, 5000, 9999, 10_000] {
            let shares = shares_from_weight(weight);
            assert_eq!(weight_from_shares(shares), weight, "weight {weight}");
            if shares > MIN_CPU_SHARES {
                assert!(weight_from_shares(shares - 1) < weight, "weight {weight}");
            }
        }
    }

    #[test]
    fn cpu_weight_follows_shares() {
        let l = Limits::from_millis(Some(250), None, None, None);
        assert_eq!(l.cpu_weight(), Some(10));
        assert_eq!(Limits::default().cpu_weight(), None);
    }
}
