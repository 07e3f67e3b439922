import type { ServiceError } from "@grpc/grpc-js";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

/** One wrong field of a request (google.rpc.BadRequest.FieldViolation). */
export interface FieldViolationDetail {
  field: string;
  description: string;
}

/** The google.rpc details the service attaches to every error. */
export interface ErrorDetails {
  /** google.rpc.ErrorInfo.reason, for example "JOURNEY_NOT_FOUND"; "" when absent. */
  reason: string;
  /** google.rpc.ErrorInfo.domain; "journeys.conversions.v1" for this service. */
  domain: string;
  /** google.rpc.BadRequest.field_violations, for INVALID_ARGUMENT. */
  fieldViolations: FieldViolationDetail[];
}

const ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo";
const BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest";

/**
 * Reads the google.rpc.Status that the server sends in the grpc-status-details-bin trailer
 * and returns its ErrorInfo and BadRequest details.
 */
export function errorDetails(error: ServiceError): ErrorDetails {
  const details: ErrorDetails = { reason: "", domain: "", fieldViolations: [] };
  const raw = error.metadata?.get("grpc-status-details-bin") ?? [];
  for (const value of raw) {
    if (typeof value === "string") {
      continue;
    }
    // google.rpc.Status: 3 = repeated google.protobuf.Any details.
    for (const [field, bytes] of lengthDelimited(value)) {
      if (field !== 3) {
        continue;
      }
      // google.protobuf.Any: 1 = type_url, 2 = value.
      let typeUrl = "";
      let payload: Uint8Array = new Uint8Array();
      for (const [anyField, anyBytes] of lengthDelimited(bytes)) {
        if (anyField === 1) typeUrl = utf8(anyBytes);
        if (anyField === 2) payload = anyBytes;
      }
      if (typeUrl === ERROR_INFO) {
        // google.rpc.ErrorInfo: 1 = reason, 2 = domain.
        for (const [f, b] of lengthDelimited(payload)) {
          if (f === 1) details.reason = utf8(b);
          if (f === 2) details.domain = utf8(b);
        }
      } else if (typeUrl === BAD_REQUEST) {
        // google.rpc.BadRequest: 1 = repeated FieldViolation {1 = field, 2 = description}.
        for (const [f, b] of lengthDelimited(payload)) {
          if (f !== 1) continue;
          const violation: FieldViolationDetail = { field: "", description: "" };
          for (const [vf, vb] of lengthDelimited(b)) {
            if (vf === 1) violation.field = utf8(vb);
            if (vf === 2) violation.description = utf8(vb);
          }
          details.fieldViolations.push(violation);
        }
      }
    }
  }
  return details;
}

/** The length-delimited fields of a message, as [field number, bytes]; others are skipped. */
function* lengthDelimited(message: Uint8Array): Generator<[number, Uint8Array]> {
  const reader = new BinaryReader(message);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (wireType === WireType.LengthDelimited) {
      yield [field, reader.bytes()];
    } else {
      reader.skip(wireType, field);
    }
  }
}

function utf8(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
