// Reads tool calls out of the streamed reply text: `{"name": "NAME", "parameters": {...}}`
// (one per line when there are several; text may come before them in the auto mode). Pushed the
// text as it streams, it says what to send: text, the start of call N (its id and name), or a
// fragment of call N's arguments, so the server can stream calls the way OpenAI does.
import { randomUUID } from 'node:crypto';
import { CALL_TRIGGER } from '../grammar/tool-grammar.js';
import type { ToolCall } from './tools.js';

export type ToolEvent =
  | { kind: 'text'; text: string }
  | { kind: 'start'; index: number; id: string; name: string }
  | { kind: 'arguments'; index: number; text: string };

const AFTER_NAME = '", "parameters": ';

export class ToolCallParser {
  readonly calls: ToolCall[] = [];
  private state: 'text' | 'name' | 'arguments' | 'close' = 'text';
  private buffer = '';
  // JSON scanning state of the arguments being read.
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Text seen since the last call (between calls: only whitespace is expected, and dropped). */
  private textSinceCall = '';

  push(text: string): ToolEvent[] {
    this.buffer += text;
    const out: ToolEvent[] = [];
    for (;;) {
      const before = this.buffer.length + this.state;
      this.advance(out);
      if (this.buffer.length + this.state === before) break;
    }
    return out;
  }

  /** The end of the reply: text still held back (a partial trigger) is text after all. */
  end(): ToolEvent[] {
    const out: ToolEvent[] = [];
    if (this.state === 'text' && this.buffer) this.emitText(this.buffer, out);
    else if (this.state === 'name' && this.buffer) this.emitText(CALL_TRIGGER + this.buffer, out);
    this.buffer = '';
    return out;
  }

  private advance(out: ToolEvent[]): void {
    switch (this.state) {
      case 'text': {
        const at = this.buffer.indexOf(CALL_TRIGGER);
        if (at >= 0) {
          this.emitText(this.buffer.slice(0, at), out);
          this.buffer = this.buffer.slice(at + CALL_TRIGGER.length);
          this.state = 'name';
          return;
        }
        // Hold back a tail that could still become the trigger.
        let keep = Math.min(this.buffer.length, CALL_TRIGGER.length - 1);
        while (keep > 0 && !CALL_TRIGGER.startsWith(this.buffer.slice(this.buffer.length - keep))) keep--;
        this.emitText(this.buffer.slice(0, this.buffer.length - keep), out);
        this.buffer = this.buffer.slice(this.buffer.length - keep);
        return;
      }
      case 'name': {
        const at = this.buffer.indexOf(AFTER_NAME);
        if (at < 0) return;
        const name = this.buffer.slice(0, at);
        this.buffer = this.buffer.slice(at + AFTER_NAME.length);
        const call: ToolCall = { id: `call_${randomUUID().replace(/-/g, '').slice(0, 24)}`, name, arguments: '' };
        this.calls.push(call);
        out.push({ kind: 'start', index: this.calls.length - 1, id: call.id, name });
        this.state = 'arguments';
        this.depth = 0;
        this.inString = false;
        this.escaped = false;
        this.textSinceCall = '';
        return;
      }
      case 'arguments': {
        let i = 0;
        let done = false;
        for (; i < this.buffer.length && !done; i++) {
          const c = this.buffer[i]!;
          if (this.inString) {
            if (this.escaped) this.escaped = false;
            else if (c === '\\') this.escaped = true;
            else if (c === '"') this.inString = false;
          } else if (c === '"') this.inString = true;
          else if (c === '{' || c === '[') this.depth++;
          else if (c === '}' || c === ']') {
            this.depth--;
            if (this.depth === 0) done = true;
          }
        }
        const piece = this.buffer.slice(0, i);
        this.buffer = this.buffer.slice(i);
        if (piece) {
          const index = this.calls.length - 1;
          this.calls[index]!.arguments += piece;
          out.push({ kind: 'arguments', index, text: piece });
        }
        if (done) this.state = 'close';
        return;
      }
      case 'close': {
        if (!this.buffer) return;
        // The call's closing brace.
        this.buffer = this.buffer.slice(this.buffer[0] === '}' ? 1 : 0);
        this.state = 'text';
        return;
      }
    }
  }

  private emitText(text: string, out: ToolEvent[]): void {
    if (!text) return;
    if (this.calls.length > 0) {
      // After a call only separators are expected; keep any other text.
      this.textSinceCall += text;
      if (this.textSinceCall.trim() === '') return;
      text = this.textSinceCall;
      this.textSinceCall = '';
    }
    out.push({ kind: 'text', text });
  }
}
