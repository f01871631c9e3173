// Implements CONNX.h: extern "C" entry points over libonnx's checker and shape inference.
// Marshalling only: parse bytes, call libonnx, serialize, and turn every C++ exception into a status
// code plus a malloc'd message. No exception leaves this file.

#include "CONNX.h"

#include <climits>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "onnx/checker.h"
#include "onnx/common/file_utils.h"
#include "onnx/common/version.h"
#include "onnx/defs/schema.h"
#include "onnx/onnx_pb.h"
#include "onnx/shape_inference/implementation.h"

static_assert(PRUNEC_ONNX_MAX_MODEL_BYTES == INT_MAX, "protobuf 3.21 buffer sizes are int");

namespace {

// Copies `text` into a malloc'd string for the caller. Never throws; leaves NULL if out of memory.
void set_message(char **message, const char *text) noexcept {
    if (message == nullptr) {
        return;
    }
    if (text == nullptr) {
        text = "";
    }
    size_t length = std::strlen(text);
    char *copy = static_cast<char *>(std::malloc(length + 1));
    if (copy != nullptr) {
        std::memcpy(copy, text, length + 1);
    }
    *message = copy;
}

// Parses a ModelProto. ParseFromArray reads the whole buffer in one flat parse: protobuf 3.21 puts
// no 64 MB total-bytes limit on it (that limit only applies to CodedInputStream, whose default is
// INT_MAX in 3.21 anyway), so any model up to INT_MAX bytes parses.
int parse_model(const void *bytes, size_t length, onnx::ModelProto &model, char **message) {
    if (length > static_cast<size_t>(PRUNEC_ONNX_MAX_MODEL_BYTES)) {
        std::string text = "model is " + std::to_string(length) +
                           " bytes; libprotobuf parses at most 2147483647 bytes in one buffer";
        set_message(message, text.c_str());
        return PRUNEC_ONNX_PARSE_FAILED;
    }
    static const char empty = 0;
    const void *data = bytes != nullptr ? bytes : &empty;
    if (bytes == nullptr && length > 0) {
        set_message(message, "no bytes given");
        return PRUNEC_ONNX_PARSE_FAILED;
    }
    if (!model.ParseFromArray(data, static_cast<int>(length))) {
        set_message(message, "libprotobuf could not parse the bytes as an onnx.ModelProto");
        return PRUNEC_ONNX_PARSE_FAILED;
    }
    return PRUNEC_ONNX_OK;
}

// Runs `body` and turns every exception it throws into a status code plus a message: libonnx's
// errors (onnx::checker::ValidationError, onnx::InferenceError, onnx::SchemaError, ...) are
// PRUNEC_ONNX_FAILED, running out of memory or anything else is PRUNEC_ONNX_INTERNAL_ERROR.
template <typename Body>
int guarded(char **message, Body body) noexcept {
    try {
        return body();
    } catch (const std::bad_alloc &) {
        set_message(message, "libonnx ran out of memory");
        return PRUNEC_ONNX_INTERNAL_ERROR;
    } catch (const std::exception &error) {
        set_message(message, error.what());
        return PRUNEC_ONNX_FAILED;
    } catch (...) {
        set_message(message, "libonnx threw an exception that is not a std::exception");
        return PRUNEC_ONNX_INTERNAL_ERROR;
    }
}

// What onnx.checker.check_model(model, full_check=True) adds to check_model:
// infer_shapes(model, check_type=True, strict_mode=True).
void infer_shapes_strictly(onnx::ModelProto &model) {
    onnx::ShapeInferenceOptions options(/*check_type_val=*/true, /*strict_mode_val=*/1);
    onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(), options);
}

} // namespace

extern "C" int prunec_onnx_check_model(const void *bytes, size_t length, int full_check, char **message) {
    if (message != nullptr) {
        *message = nullptr;
    }
    return guarded(message, [&] {
        onnx::ModelProto model;
        int status = parse_model(bytes, length, model, message);
        if (status != PRUNEC_ONNX_OK) {
            return status;
        }
        onnx::checker::check_model(model);
        if (full_check != 0) {
            infer_shapes_strictly(model);
        }
        return PRUNEC_ONNX_OK;
    });
}

extern "C" int prunec_onnx_check_model_file(const char *path, int full_check, char **message) {
    if (message != nullptr) {
        *message = nullptr;
    }
    if (path == nullptr) {
        set_message(message, "no path given");
        return PRUNEC_ONNX_INTERNAL_ERROR;
    }
    return guarded(message, [&] {
        std::string model_path(path);
        onnx::checker::check_model(model_path);
        if (full_check != 0) {
            // InferShapes(path, save_path) would also write the result out; load and infer instead.
            onnx::ModelProto model;
            onnx::LoadProtoFromPath(model_path, model);
            infer_shapes_strictly(model);
        }
        return PRUNEC_ONNX_OK;
    });
}

extern "C" int prunec_onnx_infer_shapes(
    const void *bytes, size_t length, void **out, size_t *out_length, char **message) {
    if (message != nullptr) {
        *message = nullptr;
    }
    if (out == nullptr || out_length == nullptr) {
        set_message(message, "out and out_length must not be NULL");
        return PRUNEC_ONNX_INTERNAL_ERROR;
    }
    *out = nullptr;
    *out_length = 0;
    return guarded(message, [&] {
        onnx::ModelProto model;
        int status = parse_model(bytes, length, model, message);
        if (status != PRUNEC_ONNX_OK) {
            return status;
        }
        onnx::shape_inference::InferShapes(model);
        size_t size = model.ByteSizeLong();
        if (size > static_cast<size_t>(PRUNEC_ONNX_MAX_MODEL_BYTES)) {
            std::string text = "inferred model is " + std::to_string(size) +
                               " bytes; libprotobuf serializes at most 2147483647 bytes in one buffer";
            set_message(message, text.c_str());
            return PRUNEC_ONNX_INTERNAL_ERROR;
        }
        void *buffer = std::malloc(size > 0 ? size : 1);
        if (buffer == nullptr) {
            set_message(message, "out of memory for the inferred model");
            return PRUNEC_ONNX_INTERNAL_ERROR;
        }
        if (!model.SerializeToArray(buffer, static_cast<int>(size))) {
            std::free(buffer);
            set_message(message, "libprotobuf could not serialize the inferred model");
            return PRUNEC_ONNX_INTERNAL_ERROR;
        }
        *out = buffer;
        *out_length = size;
        return PRUNEC_ONNX_OK;
    });
}

extern "C" int prunec_onnx_ir_version(void) {
    return static_cast<int>(onnx::Version::IR_VERSION);
}

extern "C" int prunec_onnx_max_opset(const char *domain) {
    if (domain == nullptr) {
        return -1;
    }
    try {
        const auto &ranges = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
        auto found = ranges.find(domain);
        return found == ranges.end() ? -1 : found->second.second;
    } catch (...) {
        return -1;
    }
}

extern "C" const char *prunec_onnx_version_string(void) {
    return onnx::LAST_RELEASE_VERSION;
}

extern "C" void prunec_onnx_free(void *p) {
    std::free(p);
}
