// The seed files the fuzz suite corrupts, built in a temp folder from the test fixtures:
//   micro/          a Hugging Face Gemma 3 multimodal checkpoint small enough to load in milliseconds
//                   (2 text layers of width 32, 1 SigLIP layer of width 8, the first 1000 pieces of
//                   the real Gemma 3 tokenizer), so every corruption goes through the whole load();
//   micro-*.gguf    that checkpoint through `gemma3 convert` (bf16, q8_0 and q4_0 text files, and
//                   the mmproj vision file);
//   tiny-text       the real test/fixtures/tiny-text checkpoint (its safetensors is corrupted as is);
//   images          PNG and JPEG encodings of a small synthetic picture (sharp).
// Everything is deterministic: weights come from a fixed-seed generator.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertCheckpoint } from '../src/convert/convert.js';
import { f32ToBf16 } from '../src/formats/dtypes.js';
import { parseConfig } from '../src/model/config.js';
import { safetensorsName, textWeightSpecs, visionWeightSpecs } from '../src/model/weight-names.js';
import { fixturePath } from './helpers.js';
import { encodeSafetensors, type StTensor } from './st-writer.js';
import { mulberry32 } from './fuzz-mutate.js';

export interface Corpus {
  root: string;
  /** The micro multimodal checkpoint folder. */
  micro: string;
  /** Micro text GGUFs, one per tensor type. */
  ggufs: string[];
  mmproj: string;
  images: string[];
  /** The real tiny-text checkpoint's config.json and model.safetensors. */
  tinyText: { config: string; safetensors: string };
}

/** Pieces of the micro vocabulary (the real tokenizer's first ids: specials, <0xNN> bytes, common merges). */
const MICRO_VOCAB = 1000;

const MICRO_CONFIG = {
  architectures: ['Gemma3ForConditionalGeneration'],
  model_type: 'gemma3',
  boi_token_index: 7,
  eoi_token_index: 8,
  image_token_index: 9,
  mm_tokens_per_image: 4,
  eos_token_id: [1, 106],
  text_config: {
    model_type: 'gemma3_text',
    vocab_size: MICRO_VOCAB,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 16,
    query_pre_attn_scalar: 16,
    sliding_window: 4,
    layer_types: ['sliding_attention', 'full_attention'],
    rope_theta: 1000000.0,
    rope_local_base_freq: 10000.0,
    hidden_activation: 'gelu_pytorch_tanh',
    rms_norm_eps: 1e-6,
    tie_word_embeddings: true,
    max_position_embeddings: 256,
    bos_token_id: 2,
    eos_token_id: [1, 106],
    pad_token_id: 0,
  },
  vision_config: {
    model_type: 'siglip_vision_model',
    hidden_size: 8,
    intermediate_size: 16,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_channels: 3,
    patch_size: 14,
    image_size: 28,
    layer_norm_eps: 1e-6,
    hidden_act: 'gelu_pytorch_tanh',
  },
};

const MICRO_PREPROCESSOR = {
  do_normalize: true, do_rescale: true, do_resize: true, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5],
  image_processor_type: 'Gemma3ImageProcessor', image_seq_length: 4, processor_class: 'Gemma3Processor', resample: 2,
  rescale_factor: 0.00392156862745098, size: { height: 28, width: 28 },
};

/** Builds every seed file under `root` (about a second, most of it reading the real tokenizer.json once). */
export async function buildCorpus(root: string): Promise<Corpus> {
  const micro = join(root, 'micro');
  mkdirSync(micro, { recursive: true });
  writeFileSync(join(micro, 'config.json'), JSON.stringify(MICRO_CONFIG, null, 2));
  writeFileSync(join(micro, 'preprocessor_config.json'), JSON.stringify(MICRO_PREPROCESSOR, null, 2));
  writeMicroTokenizer(micro);
  writeFileSync(join(micro, 'model.safetensors'), microWeights());

  const ggufs: string[] = [];
  const mmproj = join(root, 'mmproj-micro.gguf');
  for (const type of ['bf16', 'q8_0', 'q4_0'] as const) {
    const out = join(root, `micro-${type}.gguf`);
    convertCheckpoint(micro, out, { type, ...(type === 'bf16' ? { mmprojOut: mmproj } : {}) });
    ggufs.push(out);
  }
  const images = await writeImages(root);
  return { root, micro, ggufs, mmproj, images, tinyText: tinyTextFiles() };
}

/** The real tokenizer cut to its first MICRO_VOCAB ids, keeping the merges that stay inside them. */
function writeMicroTokenizer(dir: string): void {
  const full = JSON.parse(readFileSync(fixturePath('tiny-text', 'tokenizer.json'), 'utf8'));
  const vocab: Record<string, number> = {};
  for (const [piece, id] of Object.entries(full.model.vocab as Record<string, number>)) if (id < MICRO_VOCAB) vocab[piece] = id;
  const merges = (full.model.merges as [string, string][]).filter(([a, b]) => a in vocab && b in vocab && a + b in vocab);
  const added = (full.added_tokens as { id: number }[]).filter((t) => t.id < MICRO_VOCAB);
  const tokenizer = { ...full, added_tokens: added, model: { ...full.model, vocab, merges } };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  const config = JSON.parse(readFileSync(fixturePath('tiny-text', 'tokenizer_config.json'), 'utf8'));
  const decoder: Record<string, unknown> = {};
  for (const [id, t] of Object.entries(config.added_tokens_decoder as Record<string, unknown>)) if (Number(id) < MICRO_VOCAB) decoder[id] = t;
  const small = {
    add_bos_token: true, add_eos_token: false, bos_token: '<bos>', eos_token: '<end_of_turn>', pad_token: '<pad>', unk_token: '<unk>',
    added_tokens_decoder: decoder,
    chat_template: "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}" +
      '{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}',
  };
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(small, null, 2));
}

/** Small random bf16 weights for every tensor the micro config needs, under the released names. */
function microWeights(): Uint8Array {
  const config = parseConfig(MICRO_CONFIG);
  const rnd = mulberry32(12345);
  const tensors: StTensor[] = [...textWeightSpecs(config.text), ...visionWeightSpecs(config)].map((spec) => {
    const n = spec.shape.reduce((a, d) => a * d, 1);
    const bits = new Uint16Array(n);
    const isNorm = /norm|ln\d|post_ln/.test(spec.canonical);
    for (let i = 0; i < n; i++) bits[i] = f32ToBf16(isNorm ? 0 : (rnd() - 0.5) * 0.2);
    return { name: safetensorsName(spec, 'released')!, dtype: 'BF16', shape: [...spec.shape], data: new Uint8Array(bits.buffer) };
  });
  return encodeSafetensors(tensors);
}

async function writeImages(root: string): Promise<string[]> {
  const { default: sharp } = await import('sharp');
  const W = 40, H = 30;
  const rgba = new Uint8Array(W * H * 4);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const o = (y * W + x) * 4;
      rgba[o] = (x * 6) & 0xff;
      rgba[o + 1] = (y * 8) & 0xff;
      rgba[o + 2] = ((x ^ y) * 9) & 0xff;
      rgba[o + 3] = 128 + ((x + y) & 0x7f);
    }
  }
  const raw = (channels: 3 | 4) => sharp(Buffer.from(rgba), { raw: { width: W, height: H, channels: 4 } }).removeAlpha().ensureAlpha(channels === 4 ? 0.5 : 1)
    .toColourspace('srgb');
  const outputs: [string, Promise<Buffer>][] = [
    ['rgb.png', raw(3).removeAlpha().png().toBuffer()],
    ['rgba.png', sharp(Buffer.from(rgba), { raw: { width: W, height: H, channels: 4 } }).png().toBuffer()],
    ['palette.png', raw(3).removeAlpha().png({ palette: true, colours: 16 }).toBuffer()],
    ['grey16.png', raw(3).removeAlpha().toColourspace('grey16').png().toBuffer()],
    ['baseline.jpg', raw(3).removeAlpha().jpeg({ quality: 80 }).toBuffer()],
    ['progressive.jpg', raw(3).removeAlpha().jpeg({ quality: 70, progressive: true, chromaSubsampling: '4:4:4' }).toBuffer()],
  ];
  const paths: string[] = [];
  for (const [name, data] of outputs) {
    const path = join(root, name);
    writeFileSync(path, await data);
    paths.push(path);
  }
  return paths;
}

/** The real tiny-text checkpoint's files, for the corruptions of a full-size safetensors file. */
export function tinyTextFiles(): { config: string; safetensors: string } {
  return { config: fixturePath('tiny-text', 'config.json'), safetensors: fixturePath('tiny-text', 'model.safetensors') };
}
