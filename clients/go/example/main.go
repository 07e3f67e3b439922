// Command example defines a journey, records a touchpoint and prints the journey's report:
//
//	JC_TARGET=127.0.0.1:50051 JC_API_KEY=jck_... ./offline-go run ./example
//
// JC_API_KEY is the API key, sent with every call as "authorization: Bearer <key>" by the
// per-RPC credentials of package jcauth; unset against a server in development mode, which
// takes the tenant from JC_TENANT_ID (x-tenant-id metadata; "default" when unset).
// JC_TLS_CA (the CA file that verifies the server) makes the channel TLS, and JC_TLS_CERT and
// JC_TLS_KEY (a client certificate and its key) mutual TLS.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	conversionsv1 "journeyconversions/gen/journeys/conversions/v1"
	"journeyconversions/jcauth"
)

func main() {
	target := os.Getenv("JC_TARGET")
	if target == "" {
		target = "127.0.0.1:50051"
	}
	// Plaintext or TLS, and the API key with every call (see package jcauth).
	opts, err := jcauth.ConfigFromEnv().DialOptions()
	if err != nil {
		log.Fatal(err)
	}
	conn, err := grpc.Dial(target, opts...)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := conversionsv1.NewJourneyConversionsServiceClient(conn)

	// Every call: a deadline, and in development mode the tenant as x-tenant-id metadata.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if tenant := os.Getenv("JC_TENANT_ID"); tenant != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-tenant-id", tenant)
	}

	_, err = client.DefineJourney(ctx, &conversionsv1.DefineJourneyRequest{
		RequestId: "example-define-welcome",
		Journey: &conversionsv1.Journey{
			JourneyId:   "welcome",
			DisplayName: "Welcome series",
			Versions: []*conversionsv1.JourneyVersion{{
				Version: 1,
				Messages: []*conversionsv1.JourneyMessage{{
					MessageId: "welcome-1",
					Channel:   conversionsv1.Channel_CHANNEL_EMAIL,
				}},
			}},
		},
	})
	if err != nil {
		st := status.Convert(err)
		log.Fatalf("DefineJourney: %v %s %v", st.Code(), st.Message(), st.Details())
	}
	_, err = client.RecordTouchpoint(ctx, &conversionsv1.RecordTouchpointRequest{
		Touchpoint: &conversionsv1.Touchpoint{
			EventId:   fmt.Sprintf("example-delivered-%d", time.Now().UnixNano()),
			ContactId: "contact-1",
			JourneyId: "welcome",
			Version:   1,
			MessageId: "welcome-1",
			Channel:   conversionsv1.Channel_CHANNEL_EMAIL,
			Action:    conversionsv1.TouchpointAction_TOUCHPOINT_ACTION_DELIVERED,
			OccurTime: timestamppb.Now(),
		},
	})
	if err != nil {
		st := status.Convert(err)
		log.Fatalf("RecordTouchpoint: %v %s %v", st.Code(), st.Message(), st.Details())
	}
	resp, err := client.GetJourneyReport(ctx, &conversionsv1.GetJourneyReportRequest{JourneyId: "welcome"})
	if err != nil {
		log.Fatalf("GetJourneyReport: %v", err)
	}
	fmt.Println(protojson.Format(resp.GetReport()))
}
