# One INTERFACE target carries the project's warning set; every target links it.
add_library(nw_warnings INTERFACE)
target_compile_options(nw_warnings INTERFACE
    -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wformat=2 -Wvla -Wpointer-arith -Wcast-qual -Wundef)
if(CP_WERROR)
    target_compile_options(nw_warnings INTERFACE -Werror)
endif()
target_compile_definitions(nw_warnings INTERFACE _POSIX_C_SOURCE=200809L)
