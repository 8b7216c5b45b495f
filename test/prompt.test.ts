// The one prompt type every chunking caller uses: slicing re-indexes image blocks and never splits
// one; chunk ends move past a block instead of into it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GemmaError } from '../src/errors.js';
import { Prompt } from '../src/model/prompt.js';

const IMG = 99;
// [2, 5, IMG×3, 6, 7, IMG×2, 8]
const ids = [2, 5, IMG, IMG, IMG, 6, 7, IMG, IMG, 8];
const features = [Float32Array.from([1, 1, 2, 2, 3, 3]), Float32Array.from([4, 4, 5, 5])];
const prompt = Prompt.withImages(ids, features, IMG);

test('withImages places each image on its run of soft tokens', () => {
  assert.deepEqual(prompt.imageBlocks, [[2, 5], [7, 9]]);
  assert.deepEqual([...prompt.embeddings!.keys()], [2, 3, 4, 7, 8]);
  assert.deepEqual([...prompt.embeddings!.get(3)!], [2, 2]);
  assert.deepEqual([...prompt.embeddings!.get(8)!], [5, 5]);
  assert.equal(prompt.firstImagePosition, 2);
  assert.equal(Prompt.ofIds([1, 2, 3]).firstImagePosition, 3);
  assert.throws(() => Prompt.withImages(ids, [features[0]!], IMG), GemmaError);
  assert.throws(() => Prompt.withImages(ids, [features[0]!, Float32Array.from([1, 2, 3])], IMG), /placeholder tokens/);
});

test('slice re-indexes the images from the cut and refuses to split a block', () => {
  const tail = prompt.slice(5);
  assert.deepEqual(tail.ids, [6, 7, IMG, IMG, 8]);
  assert.deepEqual(tail.imageBlocks, [[2, 4]]);
  assert.deepEqual([...tail.embeddings!.get(2)!], [4, 4]);
  const head = prompt.slice(0, 2);
  assert.equal(head.embeddings, undefined);
  assert.equal(head.imageBlocks, undefined);
  assert.throws(() => prompt.slice(3), /split the image block \[2, 5\)/);
  assert.throws(() => prompt.slice(0, 8), /split the image block \[7, 9\)/);
  assert.throws(() => prompt.slice(4, 2), GemmaError);
});

test('chunkEnd never lands inside a block and always moves forward', () => {
  assert.equal(prompt.chunkEnd(0, 3), 5); // 3 is inside [2, 5)
  assert.equal(prompt.chunkEnd(0, 2), 2);
  assert.equal(prompt.chunkEnd(5, 3), 9); // 8 is inside [7, 9)
  assert.equal(prompt.chunkEnd(9, 100), 10);
  assert.equal(prompt.chunkEnd(5, 0), 6);
  // Cutting at every chunk end gives back the whole prompt.
  for (const size of [1, 2, 3, 4, 16]) {
    const pieces: number[] = [];
    for (let at = 0; at < prompt.length; at = prompt.chunkEnd(at, size)) pieces.push(...prompt.slice(at, prompt.chunkEnd(at, size)).ids);
    assert.deepEqual(pieces, ids);
  }
});
