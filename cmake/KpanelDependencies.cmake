# Every dependency is a Debian 12 package; the message names the package so a
# missing one is a one-line fix (scripts/test.sh and scripts/install.sh install them).
find_package(PkgConfig REQUIRED)

macro(kpanel_require_pkg var module debian_package)
  pkg_check_modules(${var} IMPORTED_TARGET ${module})
  if(NOT ${var}_FOUND)
    message(FATAL_ERROR "${module} not found: apt-get install ${debian_package}")
  endif()
endmacro()

find_package(OpenSSL 3.0)
if(NOT OpenSSL_FOUND)
  message(FATAL_ERROR "OpenSSL 3 not found: apt-get install libssl-dev")
endif()

find_path(PAM_INCLUDE_DIR security/pam_modules.h)
find_library(PAM_LIBRARY pam)
if(NOT PAM_INCLUDE_DIR OR NOT PAM_LIBRARY)
  message(FATAL_ERROR "Linux-PAM headers not found: apt-get install libpam0g-dev")
endif()
add_library(kpanel_pam INTERFACE)
target_include_directories(kpanel_pam SYSTEM INTERFACE ${PAM_INCLUDE_DIR})
target_link_libraries(kpanel_pam INTERFACE ${PAM_LIBRARY})

kpanel_require_pkg(SQLITE3 sqlite3 libsqlite3-dev)
kpanel_require_pkg(LIBPQ libpq libpq-dev)
kpanel_require_pkg(LIBSYSTEMD libsystemd libsystemd-dev)
kpanel_require_pkg(QRENCODE libqrencode libqrencode-dev)
kpanel_require_pkg(LIBPNG libpng libpng-dev)

find_package(Boost 1.74 CONFIG)
if(NOT Boost_FOUND)
  message(FATAL_ERROR "Boost not found: apt-get install libboost-dev libboost-test-dev")
endif()

find_package(nlohmann_json 3.10 CONFIG)
if(NOT nlohmann_json_FOUND)
  message(FATAL_ERROR "nlohmann-json not found: apt-get install nlohmann-json3-dev")
endif()

find_package(Threads REQUIRED)

# Where PAM modules go on this system (Debian: /lib/<triplet>/security).
pkg_get_variable(PAM_PC_LIBDIR pam libdir)
if(PAM_PC_LIBDIR)
  set(KPANEL_PAM_MODULE_DIR "${PAM_PC_LIBDIR}/security" CACHE PATH "PAM module directory")
else()
  set(KPANEL_PAM_MODULE_DIR "/lib/${CMAKE_LIBRARY_ARCHITECTURE}/security" CACHE PATH "PAM module directory")
endif()
