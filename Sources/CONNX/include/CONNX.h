// CONNX: a plain C face over the system libonnx (Debian's libonnx-dev, onnx 1.12-era).
//
// Why this shim exists: libonnx's checker (onnx::checker::check_model) and shape inference
// (onnx::shape_inference::InferShapes) are C++ APIs over protobuf C++ messages, and they report
// problems by throwing C++ exceptions. Swift cannot call them directly, and a C++ exception that
// unwinds into Swift frames terminates the process. prunec uses them as a second opinion on the
// models it reads and writes (DESIGN.md, "Known facts"), so every function here takes and returns
// serialized bytes and plain C types only, and catches every C++ exception before it returns.
//
// Rules (STYLE.md section 7): every symbol is prefixed `prunec_onnx_`; the C++ side only marshals
// (parse, call libonnx, serialize, turn exceptions into status codes); Swift imports this module in
// exactly one file, Sources/PruneIR/External/LibONNX.swift.
//
// Ownership: a `char **message` or `void **out` parameter receives either NULL or a buffer
// allocated with malloc by this shim. The caller owns it and must release it with
// `prunec_onnx_free` (exactly once). NULL may be passed for `message` when the text is not wanted.
// Nothing else returned here needs freeing; `prunec_onnx_version_string` returns a static string.
//
// Threads: the functions keep no state of their own; libonnx builds its operator schema registry
// once, on first use, behind C++ static initialisation, and only reads it afterwards.

#ifndef PRUNEC_CONNX_H
#define PRUNEC_CONNX_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Status codes returned by `prunec_onnx_check_model` and `prunec_onnx_infer_shapes`.
/// Success.
#define PRUNEC_ONNX_OK 0
/// libonnx rejected the model (checker or shape inference error); `*message` says why.
#define PRUNEC_ONNX_FAILED 1
/// The bytes are not a ModelProto that libprotobuf could parse, or are too large for it.
#define PRUNEC_ONNX_PARSE_FAILED 2
/// libonnx gave no verdict: out of memory, an output too large to serialize, or an exception that
/// is not a std::exception. `*message` says which.
#define PRUNEC_ONNX_INTERNAL_ERROR 3

/// The largest serialized model libprotobuf (3.21) parses or serializes in one buffer: its sizes are
/// `int`, so INT_MAX bytes (2 GiB - 1). Larger models must keep their tensors as external data.
#define PRUNEC_ONNX_MAX_MODEL_BYTES 2147483647

// PRUNEC_ONNX_MAX_MODEL_BYTES is INT_MAX of a 32-bit int, protobuf's size type.
#ifdef __cplusplus
static_assert(sizeof(int) == 4, "PRUNEC_ONNX_MAX_MODEL_BYTES assumes a 32-bit int");
static_assert(sizeof(size_t) >= sizeof(int), "lengths are size_t and must hold any int size");
#else
_Static_assert(sizeof(int) == 4, "PRUNEC_ONNX_MAX_MODEL_BYTES assumes a 32-bit int");
_Static_assert(sizeof(size_t) >= sizeof(int), "lengths are size_t and must hold any int size");
#endif

/// Parses `length` bytes at `bytes` as a serialized onnx.ModelProto and runs
/// onnx::checker::check_model on it. With `full_check` non-zero it then also runs shape inference
/// with type checking and strict mode, as onnx's own `check_model(model, full_check=True)` does.
///
/// Returns PRUNEC_ONNX_OK, PRUNEC_ONNX_FAILED, PRUNEC_ONNX_PARSE_FAILED (also when `length`
/// exceeds PRUNEC_ONNX_MAX_MODEL_BYTES) or PRUNEC_ONNX_INTERNAL_ERROR. Unless OK, `*message`
/// (if `message` is not NULL) receives a malloc'd, NUL-terminated explanation to release with
/// `prunec_onnx_free`; on OK it is set to NULL.
///
/// Tensors stored as external data are not read, but libonnx 1.12 checks that each `location`
/// exists (stat) relative to the process's current directory, since bytes have no folder: use
/// `prunec_onnx_check_model_file` for models with external data.
int prunec_onnx_check_model(const void *bytes, size_t length, int full_check, char **message);

/// Like `prunec_onnx_check_model`, but libonnx reads the model from the file at `path` (a
/// NUL-terminated file system path) and looks up external data locations in the file's folder
/// (onnx::checker::check_model(path)). A file libonnx cannot open or parse is reported as
/// PRUNEC_ONNX_FAILED with libonnx's message.
int prunec_onnx_check_model_file(const char *path, int full_check, char **message);

/// Parses a serialized onnx.ModelProto, runs onnx::shape_inference::InferShapes on it (default
/// options: no type check, lenient mode, no data propagation) and serializes the result.
///
/// On PRUNEC_ONNX_OK, `*out` receives a malloc'd buffer of `*out_length` bytes holding the
/// inferred model (value_info filled in), to release with `prunec_onnx_free`, and `*message` is set
/// to NULL. Otherwise `*out` is NULL, `*out_length` is 0, and `*message` (if `message` is not NULL)
/// receives a malloc'd explanation. Status codes as for `prunec_onnx_check_model`.
int prunec_onnx_infer_shapes(const void *bytes, size_t length, void **out, size_t *out_length, char **message);

/// The newest IR version this libonnx knows (onnx::Version::IR_VERSION; 8 for onnx 1.12).
int prunec_onnx_ir_version(void);

/// The highest opset version libonnx's schema registry knows for `domain`: "" for the default
/// ai.onnx domain (the spelling "ai.onnx" is not recognised here), "ai.onnx.ml",
/// "ai.onnx.training", "ai.onnx.preview.training". Returns -1 for a domain libonnx does not know
/// (custom domains) or a NULL `domain`.
int prunec_onnx_max_opset(const char *domain);

/// The onnx release these headers belong to (onnx::LAST_RELEASE_VERSION, e.g. "1.12.0").
/// A static string: do not free it.
const char *prunec_onnx_version_string(void);

/// Releases a buffer that this shim returned through a `message` or `out` parameter.
/// NULL is allowed and does nothing.
void prunec_onnx_free(void *p);

#ifdef __cplusplus
}
#endif

#endif // PRUNEC_CONNX_H
