// A thin layer over the generated @grpc/grpc-js client: promise-returning calls with a deadline
// and the tenant header, and the google.rpc error details of a failed call. The messages and
// the client class are imported from the generated modules under ./gen/journeys/conversions/v1.
export * from "./client";
export * from "./errors";
