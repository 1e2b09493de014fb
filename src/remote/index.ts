export * from "./options.ts";
export * from "./challenge.ts";
export * from "./docker_config.ts";
export { RegistryResponseError, parseErrorBody, parseRetryAfter } from "./errors.ts";
export { RegistryTransport, repositoryScope, type TransportRequest, type TransportResponse } from "./transport.ts";
export { registrySource, MAX_DOCUMENT_BYTES } from "./source.ts";
export { registrySink, type RegistrySinkOptions } from "./sink.ts";
export { withDigestParam } from "./upload.ts";
