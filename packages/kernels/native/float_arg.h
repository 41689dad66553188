// The Node-API argument checks the sources of the oneDNN addon share.
#pragma once

#include <node_api.h>

#include <cstdint>
#include <string>

// The call's arguments into argv, exactly N of them; false (with a pending TypeError saying
// `usage`) for any other count.
template <size_t N>
inline bool exactArgs(napi_env env, napi_callback_info info, napi_value (&argv)[N], const char* usage) {
  size_t argc = N;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc != N) {
    napi_throw_type_error(env, nullptr, usage);
    return false;
  }
  return true;
}

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

// An Int32Array argument's values and count; false (with no exception pending: the caller's
// message says what the array must hold) otherwise.
inline bool int32Array(napi_env env, napi_value v, const int32_t** data, size_t* count) {
  bool isTyped = false;
  napi_typedarray_type type;
  void* raw = nullptr;
  if (napi_is_typedarray(env, v, &isTyped) != napi_ok || !isTyped ||
      napi_get_typedarray_info(env, v, &type, count, &raw, nullptr, nullptr) != napi_ok || type != napi_int32_array) {
    return false;
  }
  *data = static_cast<const int32_t*>(raw);
  return true;
}

// `count` Float32Array arguments `argv[0 .. count)`, named `names`, all as long as the first; false
// (with a pending TypeError or RangeError naming `op` and the array) otherwise.
inline bool sameLengthFloats(napi_env env, napi_value* argv, int count, const char* const* names, const char* op,
                             float** data, size_t* length) {
  for (int i = 0; i < count; ++i) {
    if (!floatArg(env, argv[i], &data[i], &length[i], names[i])) return false;
    if (length[i] != length[0]) {
      std::string message = std::string("onednn: ") + op + " " + names[i] + " has " + std::to_string(length[i]) +
                            " values, expected " + std::to_string(length[0]) + " like " + names[0];
      napi_throw_range_error(env, nullptr, message.c_str());
      return false;
    }
  }
  return true;
}

// `count` Float32Array arguments at argv, named `names`, of `want` values each; those marked in
// `optional` (none when null) may also be empty (no values: none given), and are then null in `p`.
// False with a pending TypeError or RangeError naming `kernel` and the array.
inline bool floatArgsOfLengths(napi_env env, napi_value* argv, int count, const char* const* names,
                               const int64_t* want, const char* kernel, float** p, const bool* optional = nullptr) {
  for (int i = 0; i < count; ++i) {
    size_t n = 0;
    if (!floatArg(env, argv[i], &p[i], &n, names[i])) return false;
    const bool mayBeEmpty = optional != nullptr && optional[i];
    if (mayBeEmpty && n == 0) {
      p[i] = nullptr;
      continue;
    }
    if (static_cast<int64_t>(n) != want[i]) {
      std::string message = std::string("onednn: ") + kernel + " " + names[i] + " has " + std::to_string(n) +
                            " values, expected " + std::to_string(want[i]) + (mayBeEmpty ? " (or 0: none)" : "");
      napi_throw_range_error(env, nullptr, message.c_str());
      return false;
    }
  }
  return true;
}
