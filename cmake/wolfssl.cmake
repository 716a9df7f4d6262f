# rg_wolfssl: the wolfSSL that src/tls, bench, the TLS unit test and the TLS
# fuzz target compile and link against — headers, library and the
# RINGGATE_WOLFSSL_ASM define all come from this one target, so no target can
# mix the headers of one build with the library of the other (the asm build's
# public structs differ in size; src/tls/tls-wolfssl.h checks the define
# against the headers' options.h).
#
# RINGGATE_WOLFSSL=asm: Debian's own wolfSSL source package built with the
# x86-64 assembly by cmake/wolfssl-asm.sh into a cache outside the source
# tree, linked statically. RINGGATE_WOLFSSL=system: Debian's libwolfssl
# (static archive with RINGGATE_STATIC_DEPS). Default: asm on x86-64 when it
# can be built, else system, with a message saying why.
set(RINGGATE_WOLFSSL "" CACHE STRING "wolfSSL build: asm (own, x86-64 assembly) or system (Debian's libwolfssl); empty = asm when possible")
set_property(CACHE RINGGATE_WOLFSSL PROPERTY STRINGS "" asm system)
if(DEFINED ENV{XDG_CACHE_HOME} AND NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
  set(rg_cache_default "$ENV{XDG_CACHE_HOME}/ringgate")
else()
  set(rg_cache_default "$ENV{HOME}/.cache/ringgate")
endif()
set(RINGGATE_WOLFSSL_CACHE "${rg_cache_default}" CACHE PATH "where the asm wolfSSL is built once and kept")

set(rg_wolfssl_want "${RINGGATE_WOLFSSL}")
if(rg_wolfssl_want STREQUAL "")
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    set(rg_wolfssl_want asm)
  else()
    set(rg_wolfssl_want system)
    message(STATUS "wolfSSL: system (no x86-64 assembly for ${CMAKE_SYSTEM_PROCESSOR})")
  endif()
elseif(NOT rg_wolfssl_want MATCHES "^(asm|system)$")
  message(FATAL_ERROR "RINGGATE_WOLFSSL must be asm or system, not '${RINGGATE_WOLFSSL}'")
endif()

set(RINGGATE_WOLFSSL_USED system)
if(rg_wolfssl_want STREQUAL "asm")
  # its progress ("building ... once") goes to the terminal as it happens
  execute_process(
    COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/wolfssl-asm.sh ${RINGGATE_WOLFSSL_CACHE}
    RESULT_VARIABLE rg_asm_rc
    OUTPUT_VARIABLE rg_asm_out
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  string(REGEX REPLACE ".*\n" "" rg_asm_last "${rg_asm_out}")
  if(rg_asm_rc EQUAL 0 AND EXISTS "${rg_asm_last}/lib/libwolfssl.a")
    set(RINGGATE_WOLFSSL_USED asm)
    set(rg_asm_prefix "${rg_asm_last}")
    message(STATUS "wolfSSL: asm, ${rg_asm_prefix}")
  else()
    message(WARNING "wolfSSL: the asm build is unavailable, falling back to the system "
      "libwolfssl (slower crypto): ${rg_asm_last}")
  endif()
endif()

add_library(rg_wolfssl INTERFACE)
if(RINGGATE_WOLFSSL_USED STREQUAL "asm")
  target_include_directories(rg_wolfssl BEFORE INTERFACE ${rg_asm_prefix}/include)
  target_link_libraries(rg_wolfssl INTERFACE ${rg_asm_prefix}/lib/libwolfssl.a m pthread)
  target_compile_definitions(rg_wolfssl INTERFACE RINGGATE_WOLFSSL_ASM=1)
else()
  pkg_check_modules(WOLFSSL REQUIRED IMPORTED_TARGET wolfssl)
  find_library(rg_wolfssl_A NAMES libwolfssl.a)
  if(RINGGATE_STATIC_DEPS AND rg_wolfssl_A)
    # src/tls/tls-seed.c replaces the archive's wc_GenerateSeed (its
    # /dev/urandom is out of a chroot's sight). We link a copy of the archive
    # in which that one symbol is weak, so the linker takes the strong
    # definition of a binary that links tls-seed.c by the ordinary rules
    # (no --allow-multiple-definition); the library's own calls to it go
    # through relocations against the symbol, so they reach ours too.
    # Binaries without tls-seed.c keep the library's.
    set(rg_wolfssl_weak "${CMAKE_BINARY_DIR}/wolfssl-system/libwolfssl.a")
    file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/wolfssl-system")
    execute_process(
      COMMAND ${CMAKE_OBJCOPY} --weaken-symbol=wc_GenerateSeed ${rg_wolfssl_A} ${rg_wolfssl_weak}
      RESULT_VARIABLE rg_weak_rc ERROR_VARIABLE rg_weak_err)
    if(NOT rg_weak_rc EQUAL 0)
      message(FATAL_ERROR "wolfSSL: objcopy --weaken-symbol on ${rg_wolfssl_A} failed: ${rg_weak_err}")
    endif()
    target_include_directories(rg_wolfssl INTERFACE ${WOLFSSL_INCLUDE_DIRS})
    target_link_libraries(rg_wolfssl INTERFACE ${rg_wolfssl_weak} m pthread)
  else()
    target_link_libraries(rg_wolfssl INTERFACE PkgConfig::WOLFSSL)
  endif()
  target_compile_definitions(rg_wolfssl INTERFACE RINGGATE_WOLFSSL_ASM=0)
  message(STATUS "wolfSSL: system")
endif()
