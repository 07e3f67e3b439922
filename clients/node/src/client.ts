import {
  type CallOptions,
  type ClientUnaryCall,
  credentials,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import { JourneyConversionsServiceClient } from "./gen/journeys/conversions/v1/service";

/** How calls are made: the tenant sent as x-tenant-id, and each call's deadline. */
export interface CallSettings {
  /** The tenant; the server uses "default" when it is not sent. */
  tenantId?: string;
  /** The deadline of each call, in milliseconds; 10 s when unset. */
  timeoutMs?: number;
}

/** A generated unary method in its (request, metadata, options, callback) form. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** Opens a plaintext client to host:port. Close it with client.close(). */
export function connect(target: string): JourneyConversionsServiceClient {
  return new JourneyConversionsServiceClient(target, credentials.createInsecure());
}

/**
 * Calls a unary method with the tenant header and a deadline, as a promise. A failed call
 * rejects with the grpc-js ServiceError (see errorDetails for its google.rpc details).
 *
 * Build requests with the generated fromPartial, which fills the fields left out:
 *
 *   const { report } = await call(client.getJourneyReport.bind(client),
 *     GetJourneyReportRequest.fromPartial({ journeyId: "welcome" }), settings);
 */
export function call<Req, Res>(
  method: UnaryMethod<Req, Res>,
  request: Req,
  settings: CallSettings = {},
): Promise<Res> {
  const metadata = new Metadata();
  if (settings.tenantId) {
    metadata.set("x-tenant-id", settings.tenantId);
  }
  const deadline = new Date(Date.now() + (settings.timeoutMs ?? 10_000));
  return new Promise<Res>((resolve, reject) => {
    method(request, metadata, { deadline }, (error, response) => {
      if (error) {
        reject(error);
      } else {
        resolve(response);
      }
    });
  });
}
