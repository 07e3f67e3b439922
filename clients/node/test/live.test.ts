// Drives a running server through the generated TypeScript client. Skipped unless JC_TARGET
// names it (host:port): JC_TARGET=127.0.0.1:50051 npm test
// Against a server that checks API keys, JC_API_KEY is the key (its tenant should be empty);
// otherwise (development mode) the test uses a tenant of its own through x-tenant-id.
// JC_TLS_CA, JC_TLS_CERT and JC_TLS_KEY make it connect over TLS (see tlsSettingsFromEnv).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { status, type ServiceError } from "@grpc/grpc-js";
import { type CallSettings, call, connect, errorDetails, tlsSettingsFromEnv } from "../src";
import { OutcomeStatus } from "../src/gen/journeys/conversions/v1/conversions";
import { TouchpointAction } from "../src/gen/journeys/conversions/v1/events";
import { Channel, GoalEventType } from "../src/gen/journeys/conversions/v1/journey";
import {
  DefineJourneyRequest,
  EnterJourneyRequest,
  GetJourneyReportRequest,
  GetJourneyRequest,
  type JourneyConversionsServiceClient,
  RecordGoalEventRequest,
  RecordTouchpointRequest,
} from "../src/gen/journeys/conversions/v1/service";

const target = process.env.JC_TARGET ?? "";
const skip = target === "" ? "JC_TARGET is not set: no server to test against" : false;

describe("journey-conversions over @grpc/grpc-js", { skip }, () => {
  let client: JourneyConversionsServiceClient;
  const apiKey = process.env.JC_API_KEY || undefined;
  const tls = tlsSettingsFromEnv();
  // The key's (or client certificate's) tenant; in development mode a tenant of its own, so
  // the report's figures are this test's alone.
  const settings: CallSettings = apiKey || tls?.certFile
    ? { apiKey, timeoutMs: 10_000 }
    : { tenantId: `node-live-${Date.now()}`, timeoutMs: 10_000 };

  before(() => {
    client = connect(target, { tls });
  });
  after(() => {
    client?.close();
  });

  test("a journey's entry and touchpoint are counted in its report", async () => {
    const now = Date.now();
    const journeyId = "journey-node";
    const messageId = "welcome-email";
    const contactId = "contact-node";

    await call(client.defineJourney.bind(client), DefineJourneyRequest.fromPartial({
      requestId: "define-journey-node",
      journey: {
        journeyId,
        displayName: "Node live test",
        goal: { eventType: GoalEventType.GOAL_EVENT_TYPE_EMAIL_CLICKED, messageIds: [messageId] },
        versions: [{ version: 1, messages: [{ messageId, channel: Channel.CHANNEL_EMAIL }] }],
      },
    }), settings);

    await call(client.enterJourney.bind(client), EnterJourneyRequest.fromPartial({
      enrollment: {
        enrollmentId: "enrollment-node",
        contactId,
        journeyId,
        version: 1,
        enterTime: new Date(now - 10 * 60_000),
      },
    }), settings);

    const recorded = await call(client.recordTouchpoint.bind(client), RecordTouchpointRequest.fromPartial({
      touchpoint: {
        eventId: "touchpoint-node",
        contactId,
        journeyId,
        version: 1,
        messageId,
        channel: Channel.CHANNEL_EMAIL,
        action: TouchpointAction.TOUCHPOINT_ACTION_DELIVERED,
        occurTime: new Date(now - 5 * 60_000),
      },
    }), settings);
    assert.equal(recorded.touchpoint?.eventId, "touchpoint-node");

    const goal = await call(client.recordGoalEvent.bind(client), RecordGoalEventRequest.fromPartial({
      goalEvent: {
        eventId: "goal-node",
        contactId,
        eventType: GoalEventType.GOAL_EVENT_TYPE_EMAIL_CLICKED,
        messageId,
        occurTime: new Date(now - 60_000),
      },
    }), settings);
    assert.equal(goal.goalEvent?.eventId, "goal-node");
    assert.equal(goal.outcome?.status, OutcomeStatus.OUTCOME_STATUS_CONVERTED);

    const { report } = await call(
      client.getJourneyReport.bind(client), GetJourneyReportRequest.fromPartial({ journeyId }), settings,
    );
    assert.ok(report, "GetJourneyReport returned no report");
    assert.equal(report.entered, 1);
    assert.equal(report.goalConversions, 1);
    const message = report.messages.find((m) => m.messageId === messageId);
    assert.ok(message, `the report has no figures for ${messageId}`);
    const delivered = message.touchpoints.find(
      (c) => c.action === TouchpointAction.TOUCHPOINT_ACTION_DELIVERED,
    );
    assert.equal(delivered?.count, 1);
  });

  test("an unknown journey is NOT_FOUND with an ErrorInfo reason", async () => {
    const error = await call(
      client.getJourney.bind(client), GetJourneyRequest.fromPartial({ journeyId: "no-such-journey" }), settings,
    ).then(
      () => assert.fail("GetJourney of an unknown journey succeeded"),
      (e: ServiceError) => e,
    );
    assert.equal(error.code, status.NOT_FOUND);
    const details = errorDetails(error);
    assert.notEqual(details.reason, "");
    assert.equal(details.domain, "journeys.conversions.v1");
  });

  test("a touchpoint without fields is INVALID_ARGUMENT with field violations", async () => {
    const error = await call(
      client.recordTouchpoint.bind(client),
      RecordTouchpointRequest.fromPartial({ touchpoint: { eventId: "bad-touchpoint-node" } }),
      settings,
    ).then(
      () => assert.fail("RecordTouchpoint without fields succeeded"),
      (e: ServiceError) => e,
    );
    assert.equal(error.code, status.INVALID_ARGUMENT);
    assert.ok(errorDetails(error).fieldViolations.length > 0, "no google.rpc.BadRequest field violations");
  });
});
