# sluice_add_test(NAME name SOURCES ... LIBS ... [TIMEOUT s] [LABELS ...])
# One gtest binary registered as one ctest test; run from the build tree so
# tests find daemons at $<TARGET_FILE:...> via the SLUICE_BUILD_DIR variable.
function(sluice_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main Threads::Threads)
  add_test(NAME ${T_NAME} COMMAND ${T_NAME} --gtest_color=no)
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "SLUICE_BUILD_DIR=${CMAKE_BINARY_DIR};SLUICE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
  if(T_LABELS)
    set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}")
  endif()
endfunction()

# sluice_flatbuffers(TARGET name SCHEMAS a.fbs b.fbs): generates *_generated.h
# next to the build tree copy of each schema and exposes them via an
# INTERFACE library `name`.
function(sluice_flatbuffers)
  cmake_parse_arguments(F "" "TARGET" "SCHEMAS" ${ARGN})
  set(outputs)
  foreach(schema ${F_SCHEMAS})
    get_filename_component(base ${schema} NAME_WE)
    get_filename_component(abs ${schema} ABSOLUTE)
    file(RELATIVE_PATH rel_dir ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
    set(out_dir ${CMAKE_BINARY_DIR}/${rel_dir})
    set(out ${out_dir}/${base}_generated.h)
    add_custom_command(OUTPUT ${out}
      COMMAND ${FLATC} --cpp --scoped-enums --gen-object-api -o ${out_dir} ${abs}
      DEPENDS ${abs} COMMENT "flatc ${base}.fbs")
    list(APPEND outputs ${out})
  endforeach()
  add_custom_target(${F_TARGET}_gen DEPENDS ${outputs})
  add_library(${F_TARGET} INTERFACE)
  add_dependencies(${F_TARGET} ${F_TARGET}_gen)
  target_include_directories(${F_TARGET} INTERFACE ${CMAKE_BINARY_DIR})
endfunction()
