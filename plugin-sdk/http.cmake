# The SDK's HTTP base (include/modelzoo/http.h and http/*.h): an HTTP client with connection reuse,
# retries, auth and caching, and HttpRegistry. A library of its own so that registries
# that do not talk HTTP do not link libcurl (Debian: libcurl4-openssl-dev).
# Included from plugin-sdk/CMakeLists.txt; safe to include twice.
if(NOT TARGET modelzoo_plugin_sdk_http)
  find_package(CURL 7.68 REQUIRED)
  # Whoever links the (static) library links libcurl too, from any directory.
  set_target_properties(CURL::libcurl PROPERTIES IMPORTED_GLOBAL TRUE)
  # One file per piece (modelzoo/http/*.h), see docs/architecture.md.
  set(sdk_http_src ${CMAKE_CURRENT_LIST_DIR}/src)
  add_library(modelzoo_plugin_sdk_http STATIC ${sdk_http_src}/http_auth.cc ${sdk_http_src}/http_redact.cc ${sdk_http_src}/http_retry.cc
              ${sdk_http_src}/http_response_cache.cc ${sdk_http_src}/http_url.cc ${sdk_http_src}/http_response.cc ${sdk_http_src}/http_client.cc
              ${sdk_http_src}/http_options.cc ${sdk_http_src}/http_registry.cc)
  target_link_libraries(modelzoo_plugin_sdk_http PUBLIC modelzoo_plugin_sdk PRIVATE CURL::libcurl)
  target_compile_definitions(modelzoo_plugin_sdk_http PRIVATE MODELZOO_SDK_VERSION="${PROJECT_VERSION}")
endif()

# An HTTP registry plugin: a static library NAME_LIB of SOURCES (its logic, unit-testable,
# its headers included as "<dir>/<file>.h") on the SDK's HTTP base, and the executable
# modelzoo-plugin-<PLUGIN> of main.cc. LIBS: what the library links privately as well.
#   modelzoo_http_registry_plugin(PLUGIN oci LIB modelzoo_oci_registry SOURCES oci.cc push.cc LIBS CURL::libcurl)
if(NOT COMMAND modelzoo_http_registry_plugin)
  function(modelzoo_http_registry_plugin)
    cmake_parse_arguments(P "" "PLUGIN;LIB" "SOURCES;LIBS" ${ARGN})
    add_library(${P_LIB} STATIC ${P_SOURCES})
    target_include_directories(${P_LIB} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/..)
    target_link_libraries(${P_LIB} PUBLIC modelzoo_plugin_sdk_http PRIVATE ${P_LIBS})
    target_compile_definitions(${P_LIB} PRIVATE MODELZOO_VERSION="${PROJECT_VERSION}")
    add_executable(modelzoo-plugin-${P_PLUGIN} main.cc)
    target_link_libraries(modelzoo-plugin-${P_PLUGIN} PRIVATE ${P_LIB})
    target_compile_definitions(modelzoo-plugin-${P_PLUGIN} PRIVATE MODELZOO_VERSION="${PROJECT_VERSION}")
  endfunction()
endif()
