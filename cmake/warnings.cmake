# Warning set shared by the library, tests, examples and tools.
function(cymg_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wstrict-prototypes
    -Wmissing-prototypes -Wpointer-arith -Wformat=2 -Wundef -Wvla)
  if(CYMG_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
