// Package livetest drives a running journey-conversions server through the generated Go stubs.
// It is skipped unless JC_TARGET names the server (host:port), for example:
//
//	JC_TARGET=127.0.0.1:50051 ./offline-go test -count=1 ./livetest
//
// Against a server that checks API keys, JC_API_KEY is the key (its tenant should be empty);
// JC_TLS_CA, JC_TLS_CERT and JC_TLS_KEY make the channel TLS (jcauth.ConfigFromEnv). Without a
// key or client certificate (development mode) each test uses a tenant of its own.
package livetest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	conversionsv1 "journeyconversions/gen/journeys/conversions/v1"
	"journeyconversions/jcauth"
)

const callTimeout = 10 * time.Second

// dial connects to JC_TARGET with the key and TLS settings of the environment and returns a
// client and a context with a deadline; in development mode (no key, no client certificate)
// the context carries a tenant of its own, so the figures read back are this test's alone.
func dial(t *testing.T) (conversionsv1.JourneyConversionsServiceClient, context.Context) {
	t.Helper()
	target := os.Getenv("JC_TARGET")
	if target == "" {
		t.Skip("JC_TARGET is not set: no server to test against")
	}
	config := jcauth.ConfigFromEnv()
	opts, err := config.DialOptions()
	if err != nil {
		t.Fatalf("dial options: %v", err)
	}
	conn, err := grpc.Dial(target, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", target, err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	if !config.Identified() {
		tenant := fmt.Sprintf("go-live-%d", time.Now().UnixNano())
		ctx = metadata.AppendToOutgoingContext(ctx, "x-tenant-id", tenant)
	}
	return conversionsv1.NewJourneyConversionsServiceClient(conn), ctx
}

func TestJourneyFlowIsCountedInTheReport(t *testing.T) {
	client, ctx := dial(t)
	now := time.Now().UTC()
	const journeyID, messageID, contactID = "journey-go", "welcome-email", "contact-go"

	_, err := client.DefineJourney(ctx, &conversionsv1.DefineJourneyRequest{
		RequestId: "define-journey-go",
		Journey: &conversionsv1.Journey{
			JourneyId:   journeyID,
			DisplayName: "Go live test",
			Goal: &conversionsv1.GoalCriterion{
				EventType:  conversionsv1.GoalEventType_GOAL_EVENT_TYPE_EMAIL_CLICKED,
				MessageIds: []string{messageID},
			},
			Versions: []*conversionsv1.JourneyVersion{{
				Version: 1,
				Messages: []*conversionsv1.JourneyMessage{{
					MessageId: messageID,
					Channel:   conversionsv1.Channel_CHANNEL_EMAIL,
				}},
			}},
		},
	})
	if err != nil {
		t.Fatalf("DefineJourney: %v", err)
	}

	_, err = client.EnterJourney(ctx, &conversionsv1.EnterJourneyRequest{
		Enrollment: &conversionsv1.Enrollment{
			EnrollmentId: "enrollment-go",
			ContactId:    contactID,
			JourneyId:    journeyID,
			Version:      1,
			EnterTime:    timestamppb.New(now.Add(-10 * time.Minute)),
		},
	})
	if err != nil {
		t.Fatalf("EnterJourney: %v", err)
	}

	_, err = client.RecordTouchpoint(ctx, &conversionsv1.RecordTouchpointRequest{
		Touchpoint: &conversionsv1.Touchpoint{
			EventId:   "touchpoint-go",
			ContactId: contactID,
			JourneyId: journeyID,
			Version:   1,
			MessageId: messageID,
			Channel:   conversionsv1.Channel_CHANNEL_EMAIL,
			Action:    conversionsv1.TouchpointAction_TOUCHPOINT_ACTION_DELIVERED,
			OccurTime: timestamppb.New(now.Add(-5 * time.Minute)),
		},
	})
	if err != nil {
		t.Fatalf("RecordTouchpoint: %v", err)
	}

	goal, err := client.RecordGoalEvent(ctx, &conversionsv1.RecordGoalEventRequest{
		GoalEvent: &conversionsv1.GoalEvent{
			EventId:   "goal-go",
			ContactId: contactID,
			EventType: conversionsv1.GoalEventType_GOAL_EVENT_TYPE_EMAIL_CLICKED,
			MessageId: messageID,
			OccurTime: timestamppb.New(now.Add(-1 * time.Minute)),
		},
	})
	if err != nil {
		t.Fatalf("RecordGoalEvent: %v", err)
	}
	if got := goal.GetGoalEvent().GetEventId(); got != "goal-go" {
		t.Errorf("RecordGoalEvent returned event %q, want goal-go", got)
	}
	if got := goal.GetOutcome().GetStatus(); got != conversionsv1.OutcomeStatus_OUTCOME_STATUS_CONVERTED {
		t.Errorf("goal event outcome %v, want CONVERTED (the touchpoint qualifies)", got)
	}

	resp, err := client.GetJourneyReport(ctx, &conversionsv1.GetJourneyReportRequest{JourneyId: journeyID})
	if err != nil {
		t.Fatalf("GetJourneyReport: %v", err)
	}
	report := resp.GetReport()
	if report.GetEntered() != 1 {
		t.Errorf("report.entered = %d, want 1", report.GetEntered())
	}
	if report.GetGoalConversions() != 1 {
		t.Errorf("report.goal_conversions = %d, want 1", report.GetGoalConversions())
	}
	delivered := int64(-1)
	for _, m := range report.GetMessages() {
		if m.GetMessageId() != messageID {
			continue
		}
		for _, c := range m.GetTouchpoints() {
			if c.GetAction() == conversionsv1.TouchpointAction_TOUCHPOINT_ACTION_DELIVERED {
				delivered = c.GetCount()
			}
		}
	}
	if delivered != 1 {
		t.Errorf("delivered touchpoints of %s = %d, want 1 (report: %v)", messageID, delivered, report)
	}
}

func TestUnknownJourneyIsNotFoundWithReason(t *testing.T) {
	client, ctx := dial(t)
	_, err := client.GetJourney(ctx, &conversionsv1.GetJourneyRequest{JourneyId: "no-such-journey"})
	st := status.Convert(err)
	if st.Code() != codes.NotFound {
		t.Fatalf("GetJourney of an unknown journey: code %v (%v), want NotFound", st.Code(), err)
	}
	if info := errorInfo(st); info == nil || info.GetReason() == "" {
		t.Errorf("NOT_FOUND carries no google.rpc.ErrorInfo reason: %v", st.Details())
	}
}

func TestInvalidTouchpointIsInvalidArgumentWithFieldViolations(t *testing.T) {
	client, ctx := dial(t)
	_, err := client.RecordTouchpoint(ctx, &conversionsv1.RecordTouchpointRequest{
		Touchpoint: &conversionsv1.Touchpoint{EventId: "bad-touchpoint-go"},
	})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("RecordTouchpoint without fields: code %v (%v), want InvalidArgument", st.Code(), err)
	}
	violations := 0
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			violations += len(br.GetFieldViolations())
		}
	}
	if violations == 0 {
		t.Errorf("INVALID_ARGUMENT carries no google.rpc.BadRequest field violations: %v", st.Details())
	}
}

func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}
