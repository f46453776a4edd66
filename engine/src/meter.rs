//! DPDK's single-rate three-colour marker (rte_meter's srTCM, RFC 2697) behind a safe
//! wrapper: a profile (the rates, shared) and meters (one per flow or source, each owned by
//! one worker).

use crate::error::Error;
use std::mem::MaybeUninit;

/// A meter's rates: `rate` units a second, with bursts of up to `burst` units (the
/// committed burst size) and no excess burst. The guard meters packets, one unit each.
pub struct Profile(Box<dpdk_sys::rte_meter_srtcm_profile>);

impl Profile {
    pub fn new(rate: u64, burst: u64) -> Result<Profile, Error> {
        let mut params = dpdk_sys::rte_meter_srtcm_params {
            cir: rate,
            cbs: burst,
            ebs: 0,
        };
        // SAFETY: the profile is plain data that rte_meter_srtcm_profile_config fills in
        // (and zero is a valid starting value for it); params is a valid struct.
        let mut profile: Box<dpdk_sys::rte_meter_srtcm_profile> =
            Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        // SAFETY: both pointers are valid for the call; it reads params, writes profile.
        let ret = unsafe { dpdk_sys::rte_meter_srtcm_profile_config(&mut *profile, &mut params) };
        if ret != 0 || rate == 0 || burst == 0 {
            return Err(Error::Config(format!(
                "a meter needs a rate and a burst above zero (rate {rate}, burst {burst})"
            )));
        }
        Ok(Profile(profile))
    }
}

/// One meter: its buckets, full at first.
pub struct Meter(dpdk_sys::rte_meter_srtcm);

impl Meter {
    pub fn new(profile: &mut Profile) -> Meter {
        // SAFETY: plain data, filled in by rte_meter_srtcm_config below.
        let mut m: dpdk_sys::rte_meter_srtcm = unsafe { MaybeUninit::zeroed().assume_init() };
        // SAFETY: both pointers are valid; the profile was configured by Profile::new.
        unsafe { dpdk_sys::rte_meter_srtcm_config(&mut m, &mut *profile.0) };
        Meter(m)
    }

    /// Whether `units` more at TSC time `now` are within the rate (green).
    pub fn conform(&mut self, profile: &mut Profile, now: u64, units: u32) -> bool {
        // SAFETY: both pointers are valid and configured; the check only updates the meter.
        let colour =
            unsafe { dpdk_sys::sluice_meter_srtcm_check(&mut self.0, &mut *profile.0, now, units) };
        colour == dpdk_sys::RTE_COLOR_GREEN as i32
    }
}
