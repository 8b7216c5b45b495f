// The server as a library (`gemma3/server`): start the OpenAI- and Ollama-compatible HTTP server
// over one model from your own program, as `gemma3 serve` does.
export { startServer, DEFAULT_MAX_IMAGE_PIXELS, type ServerOptions, type RunningServer } from './server.js';
export type { ModelLoadOptions } from './protocol.js';
