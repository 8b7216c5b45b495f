// Streaming response bodies: Server-Sent Events for the OpenAI endpoints (`data: {...}` records,
// ending with `data: [DONE]`) and newline-delimited JSON for the Ollama ones.
import type { ServerResponse } from 'node:http';

abstract class Stream {
  constructor(protected readonly res: ServerResponse, contentType: string) {
    res.socket?.setNoDelay(true);
    res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
    res.flushHeaders();
  }

  /** Whether the client is still there to read. */
  get open(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }
}

export class SseStream extends Stream {
  constructor(res: ServerResponse) {
    super(res, 'text/event-stream; charset=utf-8');
  }

  send(data: unknown): void {
    if (this.open) this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** Ends the stream the OpenAI way. */
  done(): void {
    if (!this.open) return;
    this.res.write('data: [DONE]\n\n');
    this.res.end();
  }
}

export class NdjsonStream extends Stream {
  constructor(res: ServerResponse) {
    super(res, 'application/x-ndjson');
  }

  send(data: unknown): void {
    if (this.open) this.res.write(JSON.stringify(data) + '\n');
  }

  end(): void {
    if (this.open) this.res.end();
  }
}
