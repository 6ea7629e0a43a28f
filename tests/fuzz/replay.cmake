# Replays the committed fuzz corpora and crash regressions in the normal
# test suite, with any compiler and without libFuzzer: each harness
# tests/fuzz/fuzz_NAME.c is linked with replay_main.c into
# fuzz_replay_NAME, which feeds it every file of tests/fuzz/corpus/fuzz_NAME/
# and tests/fuzz/regressions/fuzz_NAME/. CTest tests of the same names,
# labelled "unit" (so `make test-sanitize` replays them under ASan/UBSan
# too). Included from tests/faults/CMakeLists.txt.
set(FUZZ_SRC_DIR ${CMAKE_SOURCE_DIR}/tests/fuzz)
pkg_check_modules(FUZZ_CJSON REQUIRED IMPORTED_TARGET libcjson)
file(GLOB FUZZ_REPLAY_HARNESSES CONFIGURE_DEPENDS ${FUZZ_SRC_DIR}/fuzz_*.c)
foreach(src ${FUZZ_REPLAY_HARNESSES})
  get_filename_component(harness ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "fuzz_replay_" name ${harness})
  add_executable(${name} ${src} ${FUZZ_SRC_DIR}/replay_main.c)
  target_include_directories(${name} PRIVATE ${FUZZ_SRC_DIR})
  target_link_libraries(${name} PRIVATE digitd_app PkgConfig::FUZZ_CJSON PkgConfig::ZLIB)
  # one allocation over 300 MB fails the replay, as in the libFuzzer runs
  target_link_options(${name} PRIVATE -Wl,--wrap=malloc -Wl,--wrap=calloc
                      -Wl,--wrap=realloc)
  add_test(NAME ${name}
    COMMAND ${name} ${FUZZ_SRC_DIR}/corpus/${harness} ${FUZZ_SRC_DIR}/regressions/${harness})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 300)
endforeach()
