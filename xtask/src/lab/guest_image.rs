//! The lab's guest: a Debian cloud kernel and a busybox initramfs with the
//! virtio modules and a tiny init, built from Debian packages alone and
//! cached in `target/lab/guest/` (never committed).

use super::*;

/// Drivers the guest needs; their dependencies (read from each module's
/// own `depends=` field, as depmod would) are loaded first.
const GUEST_DRIVERS: &[&str] = &["virtio_pci", "virtio_net", "virtio_blk"];

/// The guest's /init: loads the virtio drivers, takes its name and
/// address from the kernel command line, says it is up; then configures
/// every vxnet NIC that is plugged in (its MAC carries its address: see
/// `krrish_libvirt::names::vxnet_mac`) and answers `ping ADDR` on its
/// second serial port (`krrish_libvirt::guest::ask_ping`).
const GUEST_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko; done
for a in $(cat /proc/cmdline); do
  case $a in
    krrish.ip=*) IP=${a#krrish.ip=};;
    krrish.gw=*) GW=${a#krrish.gw=};;
    krrish.vm=*) VM=${a#krrish.vm=};;
  esac
done
ip link set lo up
# The NIC appears once virtio_pci has probed it: wait for it (up to 20 s).
n=0
while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 200 ]; do sleep 0.1; n=$((n+1)); done
if [ ! -e /sys/class/net/eth0 ]; then echo "krrish-guest failed vm=$VM: no eth0"; while true; do sleep 3600; done; fi
ip link set eth0 up
[ -n "$IP" ] && ip addr add "$IP" dev eth0
[ -n "$GW" ] && ip route add default via "$GW"
# vxnet NICs: 52:4b:A:B:C:D is A.B.C.D/24; 56:G:A:B:C:D also routes
# through A.B.C.G. Checked twice a second; each NIC once (by name, MAC and
# index: one unplugged and plugged again is a new device).
(
  mkdir -p /tmp/nics
  while true; do
    for d in /sys/class/net/eth*; do
      i=${d##*/}; mac=$(cat $d/address 2>/dev/null); x=$(cat $d/ifindex 2>/dev/null)
      [ -e "/tmp/nics/$i-$mac-$x" ] && continue
      case $mac in
        52:4b:*|56:*)
          set -- $(echo $mac | tr ':' ' ')
          a=$((0x$3)).$((0x$4)).$((0x$5)); addr=$a.$((0x$6))
          ip link set $i up; ip addr add $addr/24 dev $i
          [ $1 = 56 ] && ip route replace default via $a.$((0x$2)) dev $i
          echo "krrish-guest nic vm=$VM dev=$i ip=$addr"
          touch "/tmp/nics/$i-$mac-$x";;
      esac
    done
    sleep 0.5
  done
) &
# The disk whose serial is $1 (the root disk's is `root`, a volume's
# names it).
disk_of() {
  for d in /sys/block/vd*; do
    [ "$(cat $d/serial 2>/dev/null)" = "$1" ] && { echo /dev/${d##*/}; return; }
  done
}
# Commands from the host, one per line, answered on the same port:
# `ping ADDR`; `write SERIAL BLOCK DATA` (DATA as 20 digits at the start
# of 1 MiB block BLOCK); `read SERIAL BLOCK` (0 where nothing was written).
if [ -e /dev/ttyS1 ]; then
  stty -F /dev/ttyS1 raw -echo
  (
    while true; do
      while read -r cmd arg; do
        case $cmd in
          ping) if ping -c 2 -W 2 "$arg" >/dev/null 2>&1; then r=ok; else r=fail; fi
                echo "krrish-reply ping $arg $r";;
          write) set -- $arg; dev=$(disk_of "$1"); r=fail
                 if [ -n "$dev" ] && printf '%020d' "$3" | dd of=$dev bs=1048576 seek="$2" conv=notrunc,fsync 2>/dev/null; then r=ok; fi
                 echo "krrish-reply write $1 $2 $r";;
          read) set -- $arg; dev=$(disk_of "$1"); r=fail
                if [ -n "$dev" ]; then
                  r=$(dd if=$dev bs=1048576 skip="$2" count=1 2>/dev/null | head -c 20 | tr -d '\000' | sed 's/^0*//')
                  [ -z "$r" ] && r=0
                fi
                echo "krrish-reply read $1 $2 $r";;
          *) echo "krrish-reply unknown $cmd";;
        esac
      done < /dev/ttyS1 > /dev/ttyS1
      sleep 1
    done
  ) &
fi
echo "krrish-guest up vm=$VM ip=$IP"
while true; do sleep 3600; done
"#;

/// Kernel from the Debian cloud kernel package, initramfs from
/// busybox-static and the virtio modules; rebuilt only when missing or
/// when the init script changed.
pub(super) fn build_guest() -> Result<PathBuf> {
    let dir = std::fs::canonicalize(".")?.join(lab_dir()).join("guest");
    let (kernel, initrd, recipe_file) = (
        dir.join("vmlinuz"),
        dir.join("initrd.gz"),
        dir.join("recipe"),
    );
    // What the image is made from: a change to any of it rebuilds.
    let recipe = format!(
        "recipe 2\ndrivers {}\n{GUEST_INIT}",
        GUEST_DRIVERS.join(",")
    );
    if kernel.exists()
        && initrd.exists()
        && std::fs::read_to_string(&recipe_file).ok().as_deref() == Some(recipe.as_str())
    {
        eprintln!("xtask: guest image cached in {}", dir.display());
        return Ok(dir);
    }
    let work = lab_dir().join("guest-build");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(&dir)?;
    let deps = output(Command::new("apt-cache").args(["depends", "linux-image-cloud-amd64"]))?;
    let pkg = deps
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .context("apt-cache knows no linux-image-cloud-amd64 kernel package")?
        .to_string();
    output(
        Command::new("apt-get")
            .args(["download", &pkg])
            .current_dir(&work),
    )?;
    let deb = std::fs::read_dir(&work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    let x = work.join("x");
    output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x))?;
    let vmlinuz = std::fs::read_dir(x.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .context("the kernel package has no boot/vmlinuz-*")?;
    let root = work.join("root");
    for d in ["bin", "proc", "sys", "dev", "tmp", "lib/modules"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))?;
    let mut order = String::new();
    for (m, ko) in module_load_order(&x.join("lib/modules"), GUEST_DRIVERS)
        .with_context(|| format!("resolving the guest's drivers in {pkg}"))?
    {
        std::fs::copy(&ko, root.join("lib/modules").join(format!("{m}.ko")))?;
        order.push_str(&m);
        order.push('\n');
    }
    std::fs::write(root.join("lib/modules/order"), order)?;
    std::fs::write(root.join("init"), GUEST_INIT)?;
    set_mode(&root.join("init"), 0o755)?;
    set_mode(&root.join("bin/busybox"), 0o755)?;
    let cpio = format!(
        "cd {} && find . | cpio -o -H newc --quiet | gzip -1 > {}",
        root.display(),
        std::fs::canonicalize(&dir)?.join("initrd.gz").display()
    );
    output(Command::new("sh").args(["-c", &cpio]))?;
    std::fs::copy(&vmlinuz, &kernel)?;
    for f in [&kernel, &initrd] {
        set_mode(f, 0o644)?;
    }
    std::fs::write(&recipe_file, &recipe)?;
    std::fs::write(dir.join("kernel-package"), format!("{pkg}\n"))?;
    let _ = std::fs::remove_dir_all(&work);
    eprintln!(
        "xtask: guest built from {pkg} and busybox-static in {}",
        dir.display()
    );
    Ok(dir)
}

/// `roots` and everything they depend on, dependencies first, each with
/// its file. Module dependencies change between kernel builds (6.1.0-57's
/// `virtio` needs `virtio_ring`; 6.1.0-48's did not), so they are read from
/// the modules, never written down here.
fn module_load_order(modules: &Path, roots: &[&str]) -> Result<Vec<(String, PathBuf)>> {
    fn visit(
        modules: &Path,
        m: &str,
        path: &mut Vec<String>,
        out: &mut Vec<(String, PathBuf)>,
    ) -> Result<()> {
        if out.iter().any(|(n, _)| n == m) {
            return Ok(());
        }
        if path.iter().any(|p| p == m) {
            bail!("module dependency cycle: {} -> {m}", path.join(" -> "));
        }
        if path.len() > 32 {
            bail!("module dependencies deeper than 32 at {m}");
        }
        let ko = find_file(modules, &format!("{m}.ko"))?
            .with_context(|| format!("module {m}.ko not found"))?;
        let bytes = std::fs::read(&ko)?;
        let deps = modinfo_field(&bytes, "depends").unwrap_or_default();
        path.push(m.to_string());
        for d in deps.split(',').filter(|d| !d.is_empty()) {
            visit(modules, d, path, out)?;
        }
        path.pop();
        out.push((m.to_string(), ko));
        Ok(())
    }
    let mut out = Vec::new();
    for r in roots {
        visit(modules, r, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

/// A `key=value` string of a module's `.modinfo` section (NUL-terminated).
fn modinfo_field(ko: &[u8], key: &str) -> Option<String> {
    let needle = format!("{key}=");
    let needle = needle.as_bytes();
    let at = ko
        .windows(needle.len())
        .enumerate()
        .find(|(i, w)| *w == needle && (*i == 0 || ko[i - 1] == 0))
        .map(|(i, _)| i + needle.len())?;
    let end = ko[at..].iter().position(|&b| b == 0)? + at;
    Some(String::from_utf8_lossy(&ko[at..end]).into_owned())
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", p.display()))
}

fn find_file(dir: &Path, name: &str) -> Result<Option<PathBuf>> {
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            seen += 1;
            if seen > 200_000 {
                bail!("{} holds too many files to search", dir.display());
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == name) {
                return Ok(Some(p));
            }
        }
    }
    Ok(None)
}
