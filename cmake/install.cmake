# Installation (`cmake --install BUILD [--prefix PREFIX]`): the C++ plugin SDK with a CMake
# package config, so an out-of-tree plugin builds with
#
#   find_package(modelzoo 0.1 REQUIRED)
#   target_link_libraries(my-plugin PRIVATE modelzoo::plugin_sdk)
#
# (configure it with -DCMAKE_PREFIX_PATH=PREFIX), the programs needed to run plugins, and the
# Python SDK. Layout under PREFIX:
#
#   bin/                         modelzood, modelzoo, the built-in plugins and extensions
#                                (one directory: the daemon finds its built-ins next to itself)
#   include/modelzoo/            plugin.h, extension.h, bus/*.h
#   lib/                         libmodelzoo_plugin_sdk.a, libmodelzoo_bus.a
#   lib/cmake/modelzoo/          modelzooConfig.cmake, modelzooConfigVersion.cmake, modelzooTargets*.cmake
#   share/modelzoo/python/       the Python SDK package modelzoo_plugin (add this directory to
#                                sys.path, or set MODELZOO_PYTHON_SDK to it; scaffolded
#                                Python plugins do both)
#   share/doc/modelzoo/          README.md and docs/
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(MODELZOO_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/modelzoo)
set(MODELZOO_INSTALL_PYTHONDIR ${CMAKE_INSTALL_DATADIR}/modelzoo/python)

# The exported libraries: modelzoo::bus, modelzoo::plugin_sdk, and modelzoo::plugin_sdk_http
# (the SDK's HTTP base, on libcurl) when it is built.
set(MODELZOO_EXPORTED_LIBS modelzoo_bus modelzoo_plugin_sdk)
if(TARGET modelzoo_plugin_sdk_http)
  list(APPEND MODELZOO_EXPORTED_LIBS modelzoo_plugin_sdk_http)
endif()
set(MODELZOO_EXTRA_DEPENDENCIES "")
foreach(target IN LISTS MODELZOO_EXPORTED_LIBS)
  # The libraries name their include directories by source path (right for the build tree);
  # an installed target must name the installed headers instead.
  get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
  set(wrapped "")
  foreach(dir IN LISTS dirs)
    if(dir MATCHES "^\\$<")
      list(APPEND wrapped "${dir}")
    elseif(dir)
      list(APPEND wrapped "$<BUILD_INTERFACE:${dir}>")
    endif()
  endforeach()
  list(APPEND wrapped "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
  set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${wrapped}")
  string(REGEX REPLACE "^modelzoo_" "" export_name ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${export_name})
  # Dependencies beyond the fixed ones of modelzooConfig.cmake.in.
  get_target_property(libs ${target} INTERFACE_LINK_LIBRARIES)
  if(libs MATCHES "CURL::libcurl" AND NOT MODELZOO_EXTRA_DEPENDENCIES MATCHES "CURL")
    string(APPEND MODELZOO_EXTRA_DEPENDENCIES "find_dependency(CURL)\n")
  endif()
endforeach()
# The public headers use C++17 (and plugin authors want designated initializers: C++20).
target_compile_features(modelzoo_plugin_sdk INTERFACE cxx_std_17)
# Libraries built with the sanitizers need their runtimes in whatever links them, in tree
# (where the link options are global already) and out of tree.
if(MODELZOO_SANITIZE)
  foreach(target IN LISTS MODELZOO_EXPORTED_LIBS)
    target_link_options(${target} INTERFACE -fsanitize=address,undefined)
  endforeach()
endif()
if(MODELZOO_TSAN)
  foreach(target IN LISTS MODELZOO_EXPORTED_LIBS)
    target_link_options(${target} INTERFACE -fsanitize=thread)
  endforeach()
endif()

install(TARGETS ${MODELZOO_EXPORTED_LIBS}
        EXPORT modelzooTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/bus/include/ ${PROJECT_SOURCE_DIR}/plugin-sdk/include/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")
install(EXPORT modelzooTargets
        NAMESPACE modelzoo::
        FILE modelzooTargets.cmake
        DESTINATION ${MODELZOO_INSTALL_CMAKEDIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/modelzooConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/cmake/modelzooConfig.cmake
                              INSTALL_DESTINATION ${MODELZOO_INSTALL_CMAKEDIR}
                              PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_BINDIR MODELZOO_INSTALL_PYTHONDIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/modelzooConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION}
                                 COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/modelzooConfig.cmake ${PROJECT_BINARY_DIR}/cmake/modelzooConfigVersion.cmake
        DESTINATION ${MODELZOO_INSTALL_CMAKEDIR})

# The programs: the daemon, the client, and the built-in plugins, all in one directory.
foreach(exe modelzood modelzoo modelzoo-plugin-memory modelzoo-plugin-local-file modelzoo-plugin-remote modelzoo-http-registry
            modelzoo-ext-format-validator modelzoo-ext-decrypt modelzoo-ext-decompress)
  if(TARGET ${exe})
    install(TARGETS ${exe} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()

# The Python SDK (plugin-sdk/python/modelzoo_plugin).
install(DIRECTORY ${PROJECT_SOURCE_DIR}/plugin-sdk/python/modelzoo_plugin
        DESTINATION ${MODELZOO_INSTALL_PYTHONDIR}
        OPTIONAL
        PATTERN "__pycache__" EXCLUDE
        PATTERN "*.pyc" EXCLUDE)

# The documentation.
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} OPTIONAL)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs OPTIONAL
        FILES_MATCHING PATTERN "*.md")
