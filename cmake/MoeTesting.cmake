# Test helpers: one function per kind of test, so no test is added by copy-pasted CMake.
#
#   moe_add_unit_test(NAME SOURCES ... LIBS ... [LABELS ...])
#       a gtest executable run once by ctest (label unit unless LABELS says otherwise)
#   moe_add_mpi_test(NAME SOURCES ... LIBS ... NP 1 2 4 [LABELS ...])
#       a gtest executable run under mpirun once per rank count, label mpi (plus LABELS). Open MPI needs
#       --oversubscribe to start more ranks than cores and --allow-run-as-root in containers.
#   moe_add_cli_test(NAME SCRIPT ARGS ... [PROCESSORS N])
#       tests/cli/SCRIPT run with ARGS and the repository root, label unit, OMP_NUM_THREADS=1;
#       with PROCESSORS also the mpirun command and its flags (the script launches N ranks), label
#       mpi too.
#   moe_add_fuzz_test(TARGET SEED_DIR SOURCES...)
#       tests/fuzz/TARGET.cpp built with clang++ -fsanitize=fuzzer,address,undefined against the
#       listed sources (relative to the repo root) and fuzzed for 20 s from SEED_DIR; label unit.
#       Needs MOE_CLANGXX (Debian: clang, libclang-rt-14-dev).

set(MOE_MPIEXEC_PREFLAGS "--oversubscribe;--allow-run-as-root;--bind-to;none"
    CACHE STRING "Flags placed before the program in mpirun test commands")
set(MOE_TEST_TIMEOUT 600 CACHE STRING "Per-test timeout in seconds")

function(moe_add_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} moe_test_support GTest::gtest_main)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${MOE_TEST_TIMEOUT}
                       ENVIRONMENT "OMP_NUM_THREADS=2;OMP_WAIT_POLICY=passive")
endfunction()

function(moe_add_mpi_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;NP;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} moe_test_support moe_mpi_gtest_main MPI::MPI_CXX)
  foreach(np IN LISTS T_NP)
    add_test(NAME ${name}_np${np}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} ${MOE_MPIEXEC_PREFLAGS}
                     $<TARGET_FILE:${name}> --expected-ranks=${np} ${MPIEXEC_POSTFLAGS})
    set_tests_properties(${name}_np${np} PROPERTIES LABELS "mpi;${T_LABELS}" PROCESSORS ${np}
                         TIMEOUT ${MOE_TEST_TIMEOUT} ENVIRONMENT "OMP_NUM_THREADS=1")
  endforeach()
endfunction()

function(moe_add_cli_test name)
  cmake_parse_arguments(T "" "SCRIPT;PROCESSORS" "ARGS" ${ARGN})
  set(command ${CMAKE_CURRENT_SOURCE_DIR}/cli/${T_SCRIPT} ${T_ARGS} ${PROJECT_SOURCE_DIR})
  set(labels unit)
  if(T_PROCESSORS)
    list(APPEND command ${MPIEXEC_EXECUTABLE} ${MOE_MPIEXEC_PREFLAGS})
    set(labels "unit;mpi")
  endif()
  add_test(NAME ${name} COMMAND ${command})
  set_tests_properties(${name} PROPERTIES LABELS "${labels}" TIMEOUT ${MOE_TEST_TIMEOUT}
                       ENVIRONMENT "OMP_NUM_THREADS=1")
  if(T_PROCESSORS)
    set_tests_properties(${name} PROPERTIES PROCESSORS ${T_PROCESSORS})
  endif()
endfunction()

function(moe_add_fuzz_test target seeds)
  add_test(NAME ${target}
           COMMAND ${PROJECT_SOURCE_DIR}/tests/fuzz/run_fuzz.sh ${MOE_CLANGXX} ${PROJECT_SOURCE_DIR}
                   ${CMAKE_CURRENT_BINARY_DIR}/${target} 20 ${target} ${seeds} ${ARGN})
  set_tests_properties(${target} PROPERTIES LABELS unit TIMEOUT ${MOE_TEST_TIMEOUT})
endfunction()
