# Debian 12 packages the project needs, in one place; sourced by test.sh and install.sh.
# shellcheck shell=bash disable=SC2034

# `file`: CPack's DEB generator needs it (the .deb recipe); minimal images lack it.
KPANEL_BUILD_PACKAGES=(
  build-essential cmake pkg-config file
  libpam0g-dev libssl-dev libqrencode-dev libpng-dev libsqlite3-dev libsystemd-dev libpq-dev
  libboost-dev nlohmann-json3-dev
)
KPANEL_TEST_PACKAGES=(
  libboost-test-dev clang-tidy-16 clang-format
  libpam-wrapper libnss-wrapper libpamtest0-dev pamtester oathtool zbar-tools
  openssh-server openssh-client python3 python3-pexpect groff-base systemd
  clang-16 libclang-rt-16-dev valgrind postgresql
  libpam-google-authenticator lintian faketime python3-prometheus-client
)

# Installs the packages that are not installed yet; apt-get update first, once.
kpanel_install_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$pkg")
    fi
  done
  if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
      echo "missing Debian packages: ${missing[*]} (run as root or: sudo apt-get install ${missing[*]})" >&2
      return 1
    fi
    echo "installing: ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}
