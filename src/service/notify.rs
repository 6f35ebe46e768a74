//! Messages to the service manager (sd_notify): READY=1, RELOADING=1,
//! STOPPING=1, WATCHDOG=1 and STATUS= lines. Without `NOTIFY_SOCKET` (not
//! under systemd) every call does nothing. A failed send is logged once at
//! warning level and never stops the daemon.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;
use tracing::warn;

#[derive(Debug, Default)]
pub struct Notifier {
    warned: AtomicBool,
}

impl Notifier {
    pub fn new() -> Notifier {
        Notifier::default()
    }

    /// The watchdog interval systemd asked for (`WatchdogSec=`), if any.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        sd_notify::watchdog_enabled().filter(|interval| !interval.is_zero())
    }

    /// Startup or a reload is complete.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A reload starts; READY=1 must follow when it is done.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[
                NotifyState::Reloading,
                now,
                NotifyState::Status("reloading the config"),
            ]),
            Err(_) => self.send(&[
                NotifyState::Reloading,
                NotifyState::Status("reloading the config"),
            ]),
        }
    }

    pub fn stopping(&self) {
        self.send(&[
            NotifyState::Stopping,
            NotifyState::Status("stopping: letting in-flight deliveries finish"),
        ]);
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    fn send(&self, states: &[NotifyState]) {
        if let Err(error) = sd_notify::notify(states) {
            if !self.warned.swap(true, Ordering::Relaxed) {
                warn!(error = %error, "cannot notify the service manager (NOTIFY_SOCKET)");
            }
        }
    }
}
