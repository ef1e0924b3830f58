# agon_add_plugin(NAME SOURCES src... [OUTPUT_DIR dir] [NO_INSTALL])
#
# Builds an agon plugin: a MODULE library named NAME.so with hidden
# visibility, linked against libagon (target agon::agon, or agon in the
# source tree).  In the agon source tree plugins land in the build tree's
# plugin folder and are installed with agon; out of tree they land in the
# current binary dir and are installed to <libdir>/agon/plugins unless
# NO_INSTALL is given.
function(agon_add_plugin name)
  cmake_parse_arguments(ARG "NO_INSTALL" "OUTPUT_DIR" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "agon_add_plugin(${name}): SOURCES is required")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  if(TARGET agon::agon)
    target_link_libraries(${name} PRIVATE agon::agon)
  else()
    target_link_libraries(${name} PRIVATE agon)
  endif()
  target_link_libraries(${name} PRIVATE m)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    C_STANDARD 11
    # No RUNPATH, in the build tree too (CMake pads a build RUNPATH with
    # an empty entry, which means the current directory): a plugin is
    # loaded into a program that has libagon already.
    BUILD_WITH_INSTALL_RPATH ON)
  # Undefined symbols are caught at link time, not at dlopen time (except
  # in agon's own fuzzing build, where clang's sanitizer runtime is in the
  # executable).
  if(NOT AGON_FUZZ)
    target_link_options(${name} PRIVATE -Wl,--no-undefined)
  endif()
  if(ARG_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIR})
  elseif(DEFINED AGON_BUILD_PLUGIN_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${AGON_BUILD_PLUGIN_DIR})
  endif()
  if(NOT ARG_NO_INSTALL)
    if(DEFINED AGON_BUILD_PLUGIN_DIR)
      # agon's own plugins: a relative destination follows
      # `cmake --install --prefix`, where the libagon installed with them
      # looks for them (<libdir>/agon/plugins).
      install(TARGETS ${name} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/agon/plugins)
    elseif(DEFINED AGON_INSTALL_PLUGIN_DIR)
      install(TARGETS ${name} LIBRARY DESTINATION ${AGON_INSTALL_PLUGIN_DIR})
    else()
      include(GNUInstallDirs)
      install(TARGETS ${name} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/agon/plugins)
    endif()
  endif()
endfunction()
