// Chat message types: what callers pass to the chat template. Types only; rendering lives in
// chat-template.ts, image decoding in vision/ and the processor step in prompt.ts.
import type { ImageInput } from '../vision/decode.js';

/** A text item of a content list. The Gemma 3 template renders it as its trimmed `text`. */
export interface TextPart {
  type: 'text';
  text: string;
}

/**
 * An image item of a content list. The Gemma 3 template renders it as the literal `<start_of_image>`
 * placeholder, which the processor step later turns into the full image token sequence. The pixel
 * source (`image`, or Hugging Face's `url` / `path`) is not read by the template; it is used by the vision
 * pipeline. `image` is a file path (or `file:` URL), a `data:` URL, an `http(s)://` URL (only when the
 * model was loaded with `allowRemoteImages: true`), the bytes of an encoded JPEG/PNG/WebP/GIF/AVIF/TIFF
 * file (Buffer, Uint8Array, ArrayBuffer), raw pixels `{ data, width, height, channels? }` or an RgbImage.
 */
export interface ImagePart {
  type: 'image';
  image?: ImageInput;
  url?: string;
  path?: string;
  [key: string]: unknown;
}

/**
 * Any other item, passed to the template as-is, e.g. the OpenAI / Hugging Face form
 * `{ type: 'image_url', image_url: { url } }`. The Gemma 3 template silently drops item types it does not
 * know, so such items only matter for checkpoints whose own template handles them.
 */
export interface OtherPart {
  type: string;
  [key: string]: unknown;
}

export type ContentPart = TextPart | ImagePart | OtherPart;

/**
 * One conversation turn. Gemma 3 knows `user` and `assistant` (rendered as `model`; `model` is also
 * accepted), plus a leading `system` message, which its template folds into the first user turn. Other
 * role names are passed to the template verbatim. Extra keys on a message object (e.g. `name`) are passed
 * through to the template too.
 */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'model' | (string & {});
  content: string | ContentPart[];
}
