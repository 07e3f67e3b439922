import { readFileSync } from "node:fs";
import {
  type CallOptions,
  type ChannelCredentials,
  type ClientOptions,
  type ClientUnaryCall,
  credentials,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import { JourneyConversionsServiceClient } from "./gen/journeys/conversions/v1/service";

/**
 * How calls are made: who the caller is and each call's deadline.
 *
 * A server in production takes the tenant from the API key (or from a verified client
 * certificate, see TlsSettings); tenantId is honoured only by a server in local development
 * mode (--auth dev), and a keyed server refuses a tenantId other than the key's.
 */
export interface CallSettings {
  /** An API key (jck_<id>_<secret>), sent as "authorization: Bearer <key>". */
  apiKey?: string;
  /** Development mode only: the tenant, sent as x-tenant-id ("default" when not sent). */
  tenantId?: string;
  /** The deadline of each call, in milliseconds; 10 s when unset. */
  timeoutMs?: number;
}

/**
 * TLS settings of a channel, each PEM either as a file path or as its contents (not both).
 * An empty object ({}) is TLS verified against the system's roots.
 */
export interface TlsSettings {
  /** The CA bundle that verifies the server's certificate; the system's roots when unset. */
  caFile?: string;
  ca?: Buffer;
  /** For mutual TLS: the client certificate (chain) and its private key, given together. */
  certFile?: string;
  cert?: Buffer;
  keyFile?: string;
  key?: Buffer;
  /** The name the server's certificate must carry, when it differs from the target's host. */
  serverName?: string;
}

/** How connect() opens its channel. */
export interface ConnectOptions {
  /** TLS (and mutual TLS with a client certificate); plaintext when absent. */
  tls?: TlsSettings;
  /** Further grpc-js channel options. */
  channelOptions?: Partial<ClientOptions>;
}

/** A generated unary method in its (request, metadata, options, callback) form. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/**
 * Opens a client to host:port: plaintext unless options.tls is given. Close it with
 * client.close(). The API key goes with each call (CallSettings.apiKey), not here.
 *
 *   const client = connect("conversions.internal:443", { tls: { caFile: "ca.pem" } });
 */
export function connect(target: string, options: ConnectOptions = {}): JourneyConversionsServiceClient {
  const channelOptions: Partial<ClientOptions> = { ...options.channelOptions };
  let channelCredentials: ChannelCredentials;
  if (options.tls === undefined) {
    channelCredentials = credentials.createInsecure();
  } else {
    channelCredentials = tlsCredentials(options.tls);
    if (options.tls.serverName !== undefined) {
      channelOptions["grpc.ssl_target_name_override"] = options.tls.serverName;
      channelOptions["grpc.default_authority"] = options.tls.serverName;
    }
  }
  return new JourneyConversionsServiceClient(target, channelCredentials, channelOptions);
}

/** The channel credentials of TLS settings (read from their files now, synchronously). */
export function tlsCredentials(tls: TlsSettings): ChannelCredentials {
  const ca = pem("ca", tls.ca, tls.caFile);
  const cert = pem("cert", tls.cert, tls.certFile);
  const key = pem("key", tls.key, tls.keyFile);
  if ((cert === null) !== (key === null)) {
    throw new Error("TLS settings: a client certificate and its key go together");
  }
  return credentials.createSsl(ca, key, cert);
}

/**
 * TLS settings named by the environment, or undefined (plaintext) when it names none:
 * JC_TLS_CA (CA file; "" or unset: the system's roots), JC_TLS_CERT and JC_TLS_KEY (client
 * certificate and key files, for mutual TLS), JC_TLS_SERVER_NAME; JC_TLS=1 asks for TLS with
 * none of them.
 */
export function tlsSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): TlsSettings | undefined {
  const named = (name: string): string | undefined => (env[name] ? env[name] : undefined);
  const tls: TlsSettings = {
    caFile: named("JC_TLS_CA"),
    certFile: named("JC_TLS_CERT"),
    keyFile: named("JC_TLS_KEY"),
    serverName: named("JC_TLS_SERVER_NAME"),
  };
  const any = Object.values(tls).some((v) => v !== undefined) || named("JC_TLS") === "1";
  return any ? tls : undefined;
}

function pem(name: string, contents: Buffer | undefined, file: string | undefined): Buffer | null {
  if (contents !== undefined && file !== undefined) {
    throw new Error(`TLS settings: give ${name} or ${name}File, not both`);
  }
  if (file !== undefined) {
    return readFileSync(file);
  }
  return contents ?? null;
}

/**
 * Calls a unary method with the caller's credentials (API key, or tenant header in development
 * mode) and a deadline, as a promise. A failed call rejects with the grpc-js ServiceError (see
 * errorDetails for its google.rpc details).
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
  if (settings.apiKey) {
    metadata.set("authorization", `Bearer ${settings.apiKey}`);
  }
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
