# One interface target carries the project's warning and hardening flags;
# every target links it so no part of the tree is built more leniently.
#
# Warnings are errors only where we choose so (scripts/test.sh, hence CI, and
# developers' builds): a user's or packager's build with another compiler
# version or optimization level (GCC 12's -O3 has -Wrestrict false positives
# inside libstdc++) must still succeed, with the warning shown.
option(KPANEL_WERROR "Treat compiler warnings as errors (scripts/test.sh turns this on)" OFF)
add_library(kpanel_build_flags INTERFACE)
target_compile_options(kpanel_build_flags INTERFACE
  -Wall -Wextra -Wpedantic -Wconversion -Wshadow -Wformat=2
  -fstack-protector-strong -fno-common)
if(KPANEL_WERROR)
  target_compile_options(kpanel_build_flags INTERFACE -Werror)
endif()
target_compile_definitions(kpanel_build_flags INTERFACE $<$<NOT:$<CONFIG:Debug>>:_FORTIFY_SOURCE=2>)
target_link_options(kpanel_build_flags INTERFACE -Wl,-z,relro -Wl,-z,now -Wl,--as-needed)

if(KPANEL_SANITIZE)
  target_compile_options(kpanel_build_flags INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(kpanel_build_flags INTERFACE -fsanitize=address,undefined)
  # _FORTIFY_SOURCE and ASan interfere; sanitizer builds check memory themselves.
  target_compile_options(kpanel_build_flags INTERFACE -U_FORTIFY_SOURCE)
  # -O1 and line tables only (after the build type's -O2 -g, so they win):
  # what ASan's documentation recommends, reports keep file:line, and the
  # sanitizer build compiles ~35% faster (it was most of CI's time).
  target_compile_options(kpanel_build_flags INTERFACE -O1 -g1)
endif()
