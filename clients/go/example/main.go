// Command example records a touchpoint and prints a journey's report:
//
//	JC_TARGET=127.0.0.1:50051 ./offline-go run ./example
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
)

func main() {
	target := os.Getenv("JC_TARGET")
	if target == "" {
		target = "127.0.0.1:50051"
	}
	conn, err := grpc.Dial(target, grpc.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := conversionsv1.NewJourneyConversionsServiceClient(conn)

	// Every call: a deadline, and the tenant as x-tenant-id metadata.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-tenant-id", "default")

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
