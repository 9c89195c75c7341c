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
