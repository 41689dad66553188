// The one Node-API argument check both sources of the oneDNN addon need.
#pragma once

#include <node_api.h>

#include <string>

// A Float32Array argument's data and length; false (with a pending TypeError naming `what`)
// otherwise.
inline bool floatArg(napi_env env, napi_value v, float** data, size_t* length, const std::string& what) {
  bool isTyped = false;
  napi_is_typedarray(env, v, &isTyped);
  napi_typedarray_type type;
  void* raw = nullptr;
  if (isTyped && napi_get_typedarray_info(env, v, &type, length, &raw, nullptr, nullptr) == napi_ok &&
      type == napi_float32_array) {
    *data = static_cast<float*>(raw);
    return true;
  }
  napi_throw_type_error(env, nullptr, ("onednn: " + what + " must be a Float32Array").c_str());
  return false;
}
