#!/usr/bin/env bash
# Installs kpanel-totp on this Debian 12 host: Debian build dependencies,
# a Release build, the binaries, the PAM module and the config files, the
# system user, state and config directories; then starts the daemon (through
# systemd when the host was booted with it, otherwise in the background with
# kpanel-totpd-ctl) and prints the next step. Safe to run again: it never
# overwrites an edited config. One line per phase; the output of apt and the
# build goes to a log it names (its end is shown when a phase fails).
#
#   sudo scripts/install.sh                 install (or upgrade) and start
#   sudo scripts/install.sh --uninstall     remove what it installed, keep the
#                                           key, state and config (/etc/kpanel-totp,
#                                           /etc/pam.d/kpanel-totp, /var/lib/kpanel-totp)
#   sudo scripts/install.sh --uninstall --purge   also remove those
#   (--uninstall refuses, changing nothing, while a PAM stack in /etc/pam.d
#    names the module outside the pam-auth-update profile: removing it would
#    lock everyone out; --force overrides)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${KPANEL_INSTALL_BUILD_DIR:-$here/build-release}"
prefix="${KPANEL_PREFIX:-/usr}"
daemon_user="kpanel-totp"
etc_dir="/etc/kpanel-totp"
state_dir="/var/lib/kpanel-totp"
run_dir="/run/kpanel-totp"
socket="$run_dir/kpanel-totpd.sock"
log="${KPANEL_INSTALL_LOG:-/var/log/kpanel-totp-install.log}"
sshd_dropin="/etc/ssh/sshd_config.d/kpanel-totp.conf"
# pam-auth-update talks through debconf: no prompts, no "unable to initialize
# frontend" noise when run without a terminal.
export DEBIAN_FRONTEND=noninteractive

die() { echo "install.sh: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "run as root: sudo scripts/install.sh"

mode=install purge=0 force=0
for arg in "$@"; do
  case "$arg" in
    --uninstall) mode=uninstall ;;
    --purge) purge=1 ;;
    --force) force=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown option '$arg' (see --help)" ;;
  esac
done

systemd_running() { [[ -d /run/systemd/system ]]; }

# A daemon started without kpanel-totpd-ctl (an older install.sh): its pid file.
stop_background_daemon() {
  local pid_file="$run_dir/kpanel-totpd.pid" pid
  [[ -f $pid_file ]] || return 0
  pid="$(cat "$pid_file")"
  if [[ $pid =~ ^[0-9]+$ ]] && [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == */kpanel-totpd* ]]; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pid_file"
}

# The PAM stacks that name the module. With "hand-made", lines that
# pam-auth-update wrote into a common-* file (its block, between "here are the
# per-package modules" and "end of pam-auth-update config": our profile's) do
# not count, since uninstalling takes them out itself.
stacks_naming_module() {
  local which="$1"
  local files=(/etc/pam.d/*)
  [[ -e ${files[0]} ]] || return 0
  awk -v hand_made="$([[ $which == hand-made ]] && echo 1 || echo 0)" '
    FNR == 1 { managed = 0; common = (FILENAME ~ /\/common-[^\/]*$/) }
    common && /^# here are the per-package modules/ { managed = 1 }
    common && /^# end of pam-auth-update config/ { managed = 0 }
    /^[[:space:]]*[^#[:space:]][^#]*pam_kpanel_totp\.so/ && !(hand_made && managed) {
      print FILENAME; nextfile
    }' "${files[@]}" 2>/dev/null || true
}

if [[ $mode == uninstall ]]; then
  # Everything is checked before anything changes: a refused run leaves the
  # system exactly as it was (the profile still in common-auth, so su, sudo
  # and login keep asking for a code).
  if [[ $force == 0 ]]; then
    in_use="$(stacks_naming_module hand-made)"
    if [[ -n $in_use ]]; then
      {
        echo "install.sh: refusing to uninstall; nothing was changed."
        echo "These PAM stacks still use pam_kpanel_totp.so:"
        while IFS= read -r f; do echo "  $f"; done <<<"$in_use"
        echo "Removing the module now would refuse every login through them."
        echo "Remove or comment out those lines first (or pass --force)."
      } >&2
      exit 1
    fi
  fi
  # The pam-auth-update profile first, so common-auth stops naming the module.
  if command -v pam-auth-update >/dev/null && [[ -f /usr/share/pam-configs/kpanel-totp ]]; then
    pam-auth-update --package --remove kpanel-totp
  fi
  if [[ $force == 0 ]]; then
    # pam-auth-update leaves a common-* file an admin edited by hand alone.
    in_use="$(stacks_naming_module all)"
    if [[ -n $in_use ]]; then
      die "pam-auth-update did not take the module out of: $(echo "$in_use" | tr '\n' ' ')- remove those lines by hand, then run --uninstall again; nothing else was changed"
    fi
  fi
  if systemd_running; then
    systemctl disable --now kpanel-totpd.socket kpanel-totpd.service 2>/dev/null || true
  elif [[ -x $prefix/sbin/kpanel-totpd-ctl ]]; then
    "$prefix/sbin/kpanel-totpd-ctl" stop >/dev/null || true
  fi
  stop_background_daemon
  manifest="$build_dir/install_manifest.txt"
  if [[ -f $manifest ]]; then
    # Config files under /etc stay unless --purge: they may hold an admin's edits.
    grep -v "^$etc_dir/" "$manifest" | grep -v '^/etc/pam.d/' | xargs -r rm -f --
  fi
  # The files are gone; their directories (pristine copies, the background
  # daemon's socket/pid directory) go too.
  rm -rf "$prefix/share/kpanel-totp" "$run_dir"
  if systemd_running; then systemctl daemon-reload; fi
  if [[ $purge == 1 ]]; then
    rm -rf "$etc_dir" "$state_dir"
    rm -f /etc/pam.d/kpanel-totp /var/log/kpanel-totpd.log
    userdel "$daemon_user" 2>/dev/null || true
    echo "kpanel-totp removed, with its configuration, key and state."
  else
    echo "kpanel-totp removed; kept (--purge removes them): $etc_dir, /etc/pam.d/kpanel-totp, $state_dir."
  fi
  # Not ours to delete (the admin copied it), but without the module sshd
  # asks for nothing it can check.
  if [[ -e $sshd_dropin ]]; then
    echo "You copied $sshd_dropin: remove it (or edit its AuthenticationMethods), then: sshd -t && systemctl reload ssh"
  fi
  exit 0
fi

# Each phase prints one line; what its commands print goes to the log, whose
# end is shown if the phase fails.
phase() {
  local title="$1"; shift
  printf '%s... ' "$title"
  echo "=== $title ($(date -u +%FT%TZ))" >>"$log"
  local start=$SECONDS
  if ! "$@" >>"$log" 2>&1 </dev/null; then
    echo "failed."
    echo "The last lines of $log:" >&2
    tail -n 25 "$log" | sed 's/^/  /' >&2
    exit 1
  fi
  echo "done ($((SECONDS - start)) s)."
}

install -d -m 0755 "$(dirname "$log")"
: >"$log"
chmod 0600 "$log"
echo "Installing kpanel-totp (the commands' output goes to $log)."

# shellcheck source=scripts/deps.sh
source "$here/scripts/deps.sh"
phase "[1/4] Debian packages" kpanel_install_packages "${KPANEL_BUILD_PACKAGES[@]}"

build() {
  # Release at -O2, Debian's level. No tests, no benchmark: only what installs.
  cmake -S "$here" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" \
    -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
    -DCMAKE_INSTALL_SYSCONFDIR=/etc -DKPANEL_BUILD_TESTS=OFF
  cmake --build "$build_dir" -j "$(nproc)"
}
phase "[2/4] Building (Release, in $build_dir)" build

install_files() {
  cmake --install "$build_dir"

  # The daemon's system user: supplementary group shadow so pam_unix can check
  # passwords for `kpanel-totp disable` without the daemon being root.
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
}
phase "[3/4] Installing into $prefix and /etc" install_files

ctl="$prefix/sbin/kpanel-totpd-ctl"
start_daemon() {
  if systemd_running; then
    systemctl daemon-reload
    systemd-tmpfiles --create kpanel-totp.conf || true
    systemctl enable --now kpanel-totpd.socket
    # An upgrade: a running daemon picks up the new binary.
    systemctl try-restart kpanel-totpd.service
  else
    # A daemon started by an older install.sh (pid file, no kpanel-totpd-ctl).
    stop_background_daemon
    "$ctl" restart
  fi
  for _ in $(seq 50); do [[ -S $socket ]] && return 0; sleep 0.1; done
  echo "no socket at $socket after 5 s"
  return 1
}
phase "[4/4] Starting kpanel-totpd" start_daemon

if systemd_running; then
  how="under systemd (kpanel-totpd.socket); logs: journalctl -u kpanel-totpd"
else
  how="in the background, pid $(cat "$run_dir/kpanel-totpd.pid"); log: /var/log/kpanel-totpd.log
(no systemd here: sudo kpanel-totpd-ctl start|stop|restart|reload|status)"
fi

cat <<MSG
kpanel-totp is installed; kpanel-totpd runs $how.
Next steps:
  1. Each user enrolls:      kpanel-totp enroll
  2. Wire in sshd and PAM:   see README.md, "Wiring sshd and PAM"
  3. Check the host:         sudo kpanel-totp admin doctor
MSG
