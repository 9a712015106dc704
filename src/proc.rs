//! Whether another process still lives, for the owners of pid files (run
//! locks, the sandbox announcement).

/// Whether process `pid` exists. A process we may not signal (EPERM: it
/// belongs to another user, e.g. a sandbox or run started as root) is
/// alive all the same. Pid 0 is never a process: `kill(0, ..)` would ask
/// about our own process group.
pub fn alive(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if p == 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(p, 0) };
    exists(rc, std::io::Error::last_os_error().raw_os_error())
}

/// `kill(pid, 0)`'s answer: 0, or -1 with errno ESRCH (no such process)
/// or EPERM (one that exists but is not ours to signal).
fn exists(rc: i32, errno: Option<i32>) -> bool {
    rc == 0 || errno == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eperm_is_alive_esrch_is_not() {
        assert!(exists(0, None));
        assert!(exists(-1, Some(libc::EPERM)));
        assert!(!exists(-1, Some(libc::ESRCH)));
    }

    #[test]
    fn live_foreign_and_gone_processes() {
        assert!(alive(std::process::id()));
        // pid 1 always exists; unless we are root it is not ours to signal,
        // which a check on kill's return code alone takes for "gone".
        assert!(alive(1));
        // SAFETY: geteuid has no preconditions; kill with signal 0 only checks.
        if unsafe { libc::geteuid() } != 0 {
            let rc = unsafe { libc::kill(1, 0) };
            let errno = std::io::Error::last_os_error().raw_os_error();
            assert_eq!((rc, errno), (-1, Some(libc::EPERM)));
        }
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!alive(pid));
        assert!(!alive(0));
        assert!(!alive(u32::MAX));
    }
}
