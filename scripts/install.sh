#!/usr/bin/env bash
# Installs kpanel-totp on this Debian 12 host: Debian build dependencies,
# a Release build, the binaries, the PAM module and the config files, the
# system user, state and config directories; then starts the daemon (through
# systemd when the host was booted with it, otherwise in the background) and
# prints the next step. Safe to run again: it never overwrites an edited config.
#
#   sudo scripts/install.sh                 install (or upgrade) and start
#   sudo scripts/install.sh --uninstall     remove what it installed, keep state
#   sudo scripts/install.sh --uninstall --purge   also remove /etc/kpanel-totp and state
#   (--uninstall refuses while a PAM stack in /etc/pam.d still names the module,
#    since removing it would lock everyone out; --force overrides)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${KPANEL_INSTALL_BUILD_DIR:-$here/build-release}"
prefix="${KPANEL_PREFIX:-/usr}"
daemon_user="kpanel-totp"
etc_dir="/etc/kpanel-totp"
state_dir="/var/lib/kpanel-totp"
run_dir="/run/kpanel-totp"
socket="$run_dir/kpanel-totpd.sock"

die() { echo "install.sh: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "run as root: sudo scripts/install.sh"

mode=install purge=0 force=0
for arg in "$@"; do
  case "$arg" in
    --uninstall) mode=uninstall ;;
    --purge) purge=1 ;;
    --force) force=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown option '$arg' (see --help)" ;;
  esac
done

systemd_running() { [[ -d /run/systemd/system ]]; }

stop_background_daemon() {
  local pid_file="$run_dir/kpanel-totpd.pid" pid
  [[ -f $pid_file ]] || return 0
  pid="$(cat "$pid_file")"
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pid_file"
}

if [[ $mode == uninstall ]]; then
  # The pam-auth-update profile first, so common-auth stops naming the module.
  if command -v pam-auth-update >/dev/null && [[ -f /usr/share/pam-configs/kpanel-totp ]]; then
    pam-auth-update --package --remove kpanel-totp
  fi
  # A stack that still requires a module that is gone fails every login.
  if users_of_module=$(grep -lsE '^[^#]*pam_kpanel_totp\.so' /etc/pam.d/* 2>/dev/null) && [[ $force == 0 ]]; then
    die "these PAM stacks still use pam_kpanel_totp.so: $(echo "$users_of_module" | tr '\n' ' ')- remove those lines first (or --force)"
  fi
  if systemd_running; then
    systemctl disable --now kpanel-totpd.socket kpanel-totpd.service 2>/dev/null || true
  fi
  stop_background_daemon
  manifest="$build_dir/install_manifest.txt"
  if [[ -f $manifest ]]; then
    # Config files under /etc stay unless --purge: they may hold an admin's edits.
    grep -v "^$etc_dir/" "$manifest" | grep -v '^/etc/pam.d/' | xargs -r rm -f --
  fi
  rm -f /etc/pam.d/kpanel-totp
  # The files are gone; their directories (pristine copies, the background
  # daemon's socket/pid/log directory) go too.
  rm -rf "$prefix/share/kpanel-totp" "$run_dir"
  if systemd_running; then systemctl daemon-reload; fi
  if [[ $purge == 1 ]]; then
    rm -rf "$etc_dir" "$state_dir"
    userdel "$daemon_user" 2>/dev/null || true
    echo "kpanel-totp removed, with its configuration, key and state."
  else
    echo "kpanel-totp removed; $etc_dir and $state_dir kept (--purge removes them)."
  fi
  exit 0
fi

# shellcheck source=scripts/deps.sh
source "$here/scripts/deps.sh"
kpanel_install_packages "${KPANEL_BUILD_PACKAGES[@]}"

# Release at -O2 (Debian's level): GCC 12 at CMake's default -O3 reports a false
# -Wrestrict inside libstdc++'s std::string (GCC PR 105651), which -Werror turns
# into a failed build of cli/arguments.cpp.
cmake -S "$here" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
  -DCMAKE_INSTALL_SYSCONFDIR=/etc -DKPANEL_BUILD_TESTS=OFF
cmake --build "$build_dir" -j "$(nproc)"
cmake --install "$build_dir"

# The daemon's system user: supplementary group shadow so pam_unix can check
# passwords for `kpanel-totp disable` without the daemon being root (SPEC §1).
if ! getent passwd "$daemon_user" >/dev/null; then
  useradd --system --home-dir "$state_dir" --no-create-home --shell /usr/sbin/nologin \
    --user-group "$daemon_user"
fi
usermod -a -G shadow "$daemon_user"

install -d -m 0755 -o root -g root "$etc_dir"
install -d -m 0700 -o "$daemon_user" -g "$daemon_user" "$state_dir"
# The secret-encryption key: 32 random bytes, readable by the daemon's user only.
if [[ ! -e $etc_dir/state.key ]]; then
  (umask 077 && head -c 32 /dev/urandom >"$etc_dir/state.key.new")
  chown "$daemon_user:$daemon_user" "$etc_dir/state.key.new"
  mv "$etc_dir/state.key.new" "$etc_dir/state.key"
fi
[[ -e /etc/pam.d/kpanel-totp ]] || install -m 0644 "$here/config/pam.d/kpanel-totp" /etc/pam.d/kpanel-totp
[[ -e $etc_dir/kpanel-totpd.conf ]] || install -m 0644 "$here/config/kpanel-totpd.conf" "$etc_dir/kpanel-totpd.conf"

daemon_bin="$prefix/sbin/kpanel-totpd"
if systemd_running; then
  systemctl daemon-reload
  systemd-tmpfiles --create kpanel-totp.conf || true
  systemctl enable --now kpanel-totpd.socket
  systemctl restart kpanel-totpd.service 2>/dev/null || true
  how="systemd (kpanel-totpd.socket)"
else
  stop_background_daemon
  install -d -m 0755 "$run_dir"
  chown "$daemon_user:$daemon_user" "$run_dir"
  # Same user and groups as the systemd unit; the key file is made on first start.
  nohup setpriv --reuid "$daemon_user" --regid "$daemon_user" --init-groups --no-new-privs \
    "$daemon_bin" >>"$run_dir/kpanel-totpd.log" 2>&1 &
  echo $! >"$run_dir/kpanel-totpd.pid"
  how="background process $(cat "$run_dir/kpanel-totpd.pid") (log: $run_dir/kpanel-totpd.log)"
fi

for _ in $(seq 50); do [[ -S $socket ]] && break; sleep 0.1; done
[[ -S $socket ]] || die "the daemon did not come up; see $run_dir/kpanel-totpd.log or journalctl -u kpanel-totpd"

cat <<MSG
kpanel-totp is installed; kpanel-totpd runs as $how.
Next steps:
  1. Each user enrolls:      kpanel-totp enroll
  2. Wire in sshd and PAM:   see README.md, "Wiring sshd and PAM"
  3. Check the host:         sudo kpanel-totp admin doctor
MSG
