// Defines a journey, records a touchpoint and prints the journey's report. Run:
//   JC_TARGET=host:port JC_API_KEY=jck_... npm run example
// JC_API_KEY: the API key (sent as "authorization: Bearer <key>"); unset against a server in
// development mode, which takes the tenant from JC_TENANT_ID (x-tenant-id; "default" unset).
// JC_TLS_CA: the CA file that verifies the server's certificate: TLS instead of plaintext;
// JC_TLS_CERT and JC_TLS_KEY: a client certificate and its key, for mutual TLS.
import type { ServiceError } from "@grpc/grpc-js";
import { type CallSettings, call, connect, errorDetails, tlsSettingsFromEnv } from "./src";
import { TouchpointAction } from "./src/gen/journeys/conversions/v1/events";
import { Channel } from "./src/gen/journeys/conversions/v1/journey";
import {
  DefineJourneyRequest,
  GetJourneyReportRequest,
  RecordTouchpointRequest,
} from "./src/gen/journeys/conversions/v1/service";

async function main(): Promise<void> {
  const client = connect(process.env.JC_TARGET ?? "127.0.0.1:50051", { tls: tlsSettingsFromEnv() });
  const settings: CallSettings = {
    apiKey: process.env.JC_API_KEY || undefined,
    tenantId: process.env.JC_TENANT_ID || undefined,
    timeoutMs: 5_000,
  };
  try {
    await call(client.defineJourney.bind(client), DefineJourneyRequest.fromPartial({
      requestId: "example-define-welcome",
      journey: {
        journeyId: "welcome",
        displayName: "Welcome series",
        versions: [{ version: 1, messages: [{ messageId: "welcome-1", channel: Channel.CHANNEL_EMAIL }] }],
      },
    }), settings);
    await call(client.recordTouchpoint.bind(client), RecordTouchpointRequest.fromPartial({
      touchpoint: {
        eventId: `example-delivered-${Date.now()}`,
        contactId: "contact-1",
        journeyId: "welcome",
        version: 1,
        messageId: "welcome-1",
        channel: Channel.CHANNEL_EMAIL,
        action: TouchpointAction.TOUCHPOINT_ACTION_DELIVERED,
        occurTime: new Date(),
      },
    }), settings);
    const { report } = await call(client.getJourneyReport.bind(client),
      GetJourneyReportRequest.fromPartial({ journeyId: "welcome" }), settings);
    console.log(JSON.stringify(report, null, 2));
  } catch (error) {
    const e = error as ServiceError;
    console.error(`failed: code ${e.code} ${e.details}`, errorDetails(e));
    process.exitCode = 1;
  } finally {
    client.close();
  }
}

void main();
