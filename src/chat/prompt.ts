// The Gemma3Processor step for chat messages with images: decode and preprocess every image part
// (pan & scan crops included), render the chat template (an image part renders as
// `<start_of_image>`), rewrite each cropped image's placeholder into the "Here is the original
// image ..." text, expand every placeholder into the full image token sequence and tokenize.
// Pixels in, token ids + pixel_values out: running the vision tower is the model's job.
//
// ref: transformers models/gemma3/processing_gemma3.py (Gemma3Processor.__call__), spec
// gemma3-architecture.md §3.2, §4.2.
import { GemmaError, invalidArgument } from '../errors.js';
import type { Gemma3Config } from '../model/config.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { decodeImage, type DecodeImageOptions, type ImageInput } from '../vision/decode.js';
import { preprocessImage, type PreprocessorConfig } from '../vision/preprocess.js';
import { expandImagePlaceholders, type ChatTemplate } from './chat-template.js';
import type { ChatMessage, ContentPart, ImagePart } from './messages.js';

/** The placeholder the Gemma 3 chat template writes for an image part. */
export const BOI_TOKEN = '<start_of_image>';

export interface PrepareChatContext {
  template: ChatTemplate;
  tokenizer: Tokenizer;
  config: Gemma3Config;
  /** The image processor settings; null for a text-only model (whose prompts then may not have images). */
  preprocessor: PreprocessorConfig | null;
  /** Add pan & scan crops of very wide or tall images (default: the preprocessor's do_pan_and_scan). */
  panAndScan?: boolean;
  /** Image decoding options: allowRemote, maxPixels, signal, ... */
  decode?: DecodeImageOptions;
  /**
   * Most prompt tokens allowed; a longer prompt is a CONTEXT_FULL error, raised before any image is
   * decoded when the text alone (without crops) is already too long, and again once crops are known.
   */
  maxTokens?: number;
  /** Wording of the CONTEXT_FULL message: how many tokens the context holds. */
  contextLength?: number;
}

/** A chat ready for the model: the token ids and the pixels of every picture, in prompt order. */
export interface PreparedPrompt {
  /** Token ids (one BOS, from the template), image placeholders expanded. */
  ids: number[];
  /** The text that was tokenized (the template's output after pan & scan rewriting and expansion). */
  text: string;
  /** The chat template's output before any rewriting (one `<start_of_image>` per image part). */
  templateText: string;
  /** pixel_values of each picture, [3, S, S] each: every image followed by its crops. */
  images: Float32Array[];
  /** Pan & scan crops per image part (0 when none), in order. */
  numCrops: number[];
}

/** Whether `part` is an image item (`{ type: 'image', image | url | path }`). */
export function isImagePart(part: unknown): part is ImagePart {
  return typeof part === 'object' && part !== null && (part as ContentPart).type === 'image';
}

/** The image parts of a conversation, in the order the template renders them. */
export function imagePartsOf(messages: readonly ChatMessage[]): ImagePart[] {
  const out: ImagePart[] = [];
  if (!Array.isArray(messages)) return out;
  for (const m of messages) {
    if (m && Array.isArray(m.content)) for (const part of m.content) if (isImagePart(part)) out.push(part);
  }
  return out;
}

/** The pixel source of an image part: `image`, else Hugging Face's `url` or `path`. */
export function imageSourceOf(part: ImagePart, where = 'image part'): ImageInput {
  const src = part.image ?? part.url ?? part.path;
  if (src === undefined || src === null) {
    throw new GemmaError('INVALID_ARGUMENT', `${where} has no image: give { type: 'image', image } with a path, bytes, a data: URL or pixels`);
  }
  return src as ImageInput;
}

/**
 * Replaces the k-th `<start_of_image>` with the pan & scan text when image k has crops (the
 * reference's exact string), working from the end so earlier indexes stay valid.
 */
export function rewritePanAndScan(text: string, numCrops: readonly number[], boi = BOI_TOKEN): string {
  const indexes: number[] = [];
  for (let i = text.indexOf(boi); i >= 0; i = text.indexOf(boi, i + boi.length)) indexes.push(i);
  if (indexes.length !== numCrops.length) {
    throw new GemmaError(
      'INVALID_ARGUMENT',
      `the prompt has ${indexes.length} ${boi} placeholder(s) but ${numCrops.length} image(s) were given; ` +
        `they must match (images in a system message are not rendered by the Gemma 3 template, and text containing ${boi} literally also counts)`,
    );
  }
  for (let k = indexes.length - 1; k >= 0; k--) {
    const n = numCrops[k]!;
    if (n <= 0) continue;
    const idx = indexes[k]!;
    const formatted = `Here is the original image ${boi} and here are some crops to help you see better ` + Array(n).fill(boi).join(' ');
    text = text.slice(0, idx) + formatted + text.slice(idx + boi.length);
  }
  return text;
}

/** Renders, decodes, preprocesses, rewrites, expands and tokenizes a conversation with images. */
export async function prepareChat(messages: readonly ChatMessage[], ctx: PrepareChatContext): Promise<PreparedPrompt> {
  const { template, tokenizer, config, preprocessor } = ctx;
  const panAndScan = ctx.panAndScan ?? preprocessor?.doPanAndScan ?? false;
  if (typeof panAndScan !== 'boolean') throw invalidArgument('panAndScan', 'a boolean', panAndScan);
  // Render first: malformed messages fail before any image is read.
  const templateText = template.render(messages, { addGenerationPrompt: true });
  const parts = imagePartsOf(messages);
  const sources = parts.map((p, i) => imageSourceOf(p, `image ${i + 1}`));
  const tokensPerImage = config.mmTokensPerImage;
  const tokenize = (text: string) => tokenizer.encode(text, { addBos: false });

  // The fewest tokens this prompt can have (no crops): refuse early, before decoding anything.
  const plain = expandImagePlaceholders(rewritePanAndScan(templateText, parts.map(() => 0)), tokensPerImage);
  let ids = tokenize(plain);
  checkLength(ids.length, ctx);

  const images: Float32Array[] = [];
  const numCrops: number[] = [];
  if (sources.length === 0) return { ids, text: plain, templateText, images, numCrops };
  if (!preprocessor) throw new GemmaError('INVALID_ARGUMENT', 'this model is text-only (it has no vision tower), so it cannot take images');
  const { height: H, width: W } = preprocessor.size;
  const picture = 3 * H * W;
  for (let i = 0; i < sources.length; i++) {
    throwIfAborted(ctx.decode?.signal);
    let rgb;
    try {
      rgb = await decodeImage(sources[i]!, ctx.decode);
    } catch (err) {
      if (err instanceof GemmaError) {
        const message = sources.length > 1 ? `image ${i + 1} of ${sources.length}: ${err.message}` : err.message;
        throw new GemmaError(err.code, message, { cause: err, imageIndex: i });
      }
      throw err;
    }
    // Decoding awaited: a caller that gave up meanwhile should not pay for the preprocessing.
    throwIfAborted(ctx.decode?.signal);
    const pre = preprocessImage(rgb, { ...preprocessor, doPanAndScan: panAndScan });
    numCrops.push(pre.numCrops);
    for (let p = 0; p <= pre.numCrops; p++) images.push(pre.pixelValues.subarray(p * picture, (p + 1) * picture));
  }

  let text = plain;
  if (numCrops.some((n) => n > 0)) {
    text = expandImagePlaceholders(rewritePanAndScan(templateText, numCrops), tokensPerImage);
    ids = tokenize(text);
    checkLength(ids.length, ctx);
  }
  const blocks = countRuns(ids, config.imageTokenId);
  if (blocks !== images.length) {
    throw new GemmaError('INVALID_ARGUMENT',
      `the prompt has ${blocks} image blocks after tokenization but ${images.length} pictures were prepared ` +
      '(does the text contain <image_soft_token> or <start_of_image> literally?)');
  }
  return { ids, text, templateText, images, numCrops };
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new GemmaError('ABORTED', 'aborted while preparing the images');
}

function checkLength(n: number, ctx: PrepareChatContext): void {
  if (ctx.maxTokens === undefined || n <= ctx.maxTokens) return;
  const holds = ctx.contextLength ?? ctx.maxTokens;
  throw new GemmaError('CONTEXT_FULL',
    `the prompt with its images has ${n} tokens but the context holds ${holds}` +
    `${ctx.maxTokens < holds ? ' (at least one more is needed to reply)' : ''}; ` +
    'use fewer or no pan & scan images, shorten the conversation, or load the model with a larger contextLength');
}

function countRuns(ids: readonly number[], id: number): number {
  let n = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i] === id && ids[i - 1] !== id) n++;
  return n;
}
