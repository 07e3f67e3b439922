// A thin layer over the generated @grpc/grpc-js client: plaintext or TLS channels, and
// promise-returning calls with a deadline and the caller's API key (or, in development mode,
// the tenant header), and the google.rpc error details of a failed call. The messages and
// the client class are imported from the generated modules under ./gen/journeys/conversions/v1.
export * from "./client";
export * from "./errors";
