//! Who the process runs as (uid, gid, supplementary groups, effective
//! capabilities) and the advice given when that is not enough to bind a
//! port or read a certificate.

use std::fmt;

/// `CAP_NET_BIND_SERVICE`, the bit that allows binding ports below 1024.
pub const CAP_NET_BIND_SERVICE: u32 = 10;

/// The credentials of the running process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Effective capability set, as the `CapEff` bit mask.
    pub caps: u64,
}

impl Identity {
    /// Reads the credentials of this process.
    pub fn current() -> Identity {
        let groups = nix::unistd::getgroups()
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_default();
        let caps = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
                u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
            })
            .unwrap_or(0);
        Identity {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            groups,
            caps,
        }
    }

    /// True for uid 0.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// True when the effective set holds `cap` (a `CAP_*` number).
    pub fn has_cap(&self, cap: u32) -> bool {
        cap < 64 && self.caps & (1 << cap) != 0
    }

    /// The effective capabilities by name, `none` when empty.
    pub fn cap_names(&self) -> String {
        if self.caps == 0 {
            return "none".into();
        }
        let names: Vec<String> = (0..64)
            .filter(|bit| self.has_cap(*bit))
            .map(|bit| match CAP_NAMES.get(bit as usize) {
                Some(name) => (*name).to_string(),
                None => format!("cap_{bit}"),
            })
            .collect();
        // Root's full set is long and says nothing more than "all".
        if names.len() >= CAP_NAMES.len() {
            format!("all {} capabilities", names.len())
        } else {
            names.join(",")
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups: Vec<String> = self.groups.iter().map(u32::to_string).collect();
        let groups = if groups.is_empty() {
            "none".into()
        } else {
            groups.join(",")
        };
        write!(
            f,
            "uid {} gid {} groups {} capabilities {}",
            self.uid,
            self.gid,
            groups,
            self.cap_names()
        )
    }
}

const CAP_NAMES: [&str; 41] = [
    "cap_chown",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",
];

/// What to do when binding `port` failed with EACCES.
pub fn bind_advice(port: u16, who: &Identity) -> String {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let limit = match start {
        Some(start) => format!("ports below {start} need CAP_NET_BIND_SERVICE"),
        None => "low ports need CAP_NET_BIND_SERVICE".into(),
    };
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/path/to/blog".into());
    format!(
        "port {port} as uid {uid}: {limit}, which this process {caps}. Fixes: \
         (1) give the binary the file capability: setcap cap_net_bind_service=+ep {exe} \
         (in a container also keep NET_BIND_SERVICE in the bounding set and do not set \
         no-new-privileges on Docker before 23.0.7); \
         (2) run with bridge networking, where Docker sets ip_unprivileged_port_start=0 \
         inside the container; (3) use a port of 1024 or more (--http-port/--https-port)",
        uid = who.uid,
        caps = if who.has_cap(CAP_NET_BIND_SERVICE) {
            "it"
        } else {
            "not"
        },
    )
}

/// What to do when a certificate file could not be read.
pub fn read_advice(kind: std::io::ErrorKind, who: &Identity) -> String {
    match kind {
        std::io::ErrorKind::PermissionDenied => format!(
            "gid {gid} (or one of the groups) needs read and search on live/ and archive/ \
             (chmod 0750, chgrp {gid}) and read on the private key (chmod 0640, chgrp {gid}); \
             certbot keeps that group and mode on renewal",
            gid = who.gid
        ),
        std::io::ErrorKind::NotFound => "check --letsencrypt-dir and --domain: certbot \
             writes live/<first domain>/fullchain.pem and privkey.pem"
            .into(),
        _ => "check the file and the disk".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_come_from_the_bit_mask() {
        let who = Identity {
            uid: 2200,
            gid: 2200,
            groups: vec![],
            caps: 1 << 10,
        };
        assert_eq!(who.cap_names(), "cap_net_bind_service");
        assert!(who.to_string().contains("uid 2200 gid 2200 groups none"));
        let advice = bind_advice(80, &who);
        assert!(
            advice.contains("port 80 as uid 2200") && advice.contains("setcap"),
            "{advice}"
        );
    }
}
