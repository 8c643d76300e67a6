# cmake -DGROFF=/usr/bin/groff -DVERSION=X.Y.Z -DPAGES="a.1;b.8" -P lint-man-pages.cmake
#
# Fails on any groff output with every warning enabled (-ww), formatted for
# the UTF-8 terminal device man(1) uses and for groff's default device, and
# on a .TH line whose section differs from the file's or whose version is not
# the project's.
foreach(var GROFF VERSION PAGES)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "lint-man-pages.cmake: -D${var}=... is required")
  endif()
endforeach()

set(problems 0)
foreach(page IN LISTS PAGES)
  get_filename_component(name "${page}" NAME)
  if(NOT EXISTS "${page}")
    message(SEND_ERROR "${name}: missing")
    math(EXPR problems "${problems} + 1")
    continue()
  endif()

  foreach(device utf8 default)
    set(device_args)
    if(NOT device STREQUAL "default")
      set(device_args "-T${device}")
    endif()
    execute_process(
      COMMAND "${CMAKE_COMMAND}" -E env LC_ALL=C.UTF-8
              "${GROFF}" -man -ww -z ${device_args} "${page}"
      RESULT_VARIABLE status
      OUTPUT_VARIABLE out
      ERROR_VARIABLE err)
    if(NOT status EQUAL 0 OR NOT "${out}${err}" STREQUAL "")
      message(SEND_ERROR "${name} (groff -man -ww -z, device ${device}, exit ${status}):\n${out}${err}")
      math(EXPR problems "${problems} + 1")
    endif()
  endforeach()

  string(REGEX MATCH "[0-9]$" section "${name}")
  file(STRINGS "${page}" th REGEX "^\\.TH ")
  if(NOT th MATCHES "^\\.TH [^ ]+ ${section} [^ ]+ \"kpanel-totp ${VERSION}\"")
    message(SEND_ERROR "${name}: .TH must name section ${section} and \"kpanel-totp ${VERSION}\": ${th}")
    math(EXPR problems "${problems} + 1")
  endif()
endforeach()

if(problems GREATER 0)
  message(FATAL_ERROR "${problems} problem(s) in the man pages")
endif()
list(LENGTH PAGES count)
message(STATUS "${count} man pages clean")
