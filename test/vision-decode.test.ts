// decodeImage: every input form, lossless and lossy formats, PIL's RGB conversion rules (grayscale, palette,
// 16-bit, CMYK, alpha), parity with Pillow 12.3-made files, EXIF orientation, errors, and remote URLs.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { decodeImage, parseDataUrl } from '../src/vision/decode.js';
import type { RgbImage } from '../src/vision/image.js';
import { IMAGES_DIR, flatColours, meanAbsDiff, rawInput, rejectsWith, samePixels, synthRgb } from './vision-helpers.js';

const PIL_GOLDENS: Record<string, { mode: string; width: number; height: number; file: string; rgb: string }> = {
  cmyk_jpeg: {
    mode: 'CMYK', width: 16, height: 12,
    file:
      '/9j/7gAOQWRvYmUAZAAAAAAA/9sAQwADAgIDAgIDAwMDBAMDBAUIBQUEBAUKBwcGCAwKDAwLCgsLDQ4SEA0OEQ4LCxAWEBET' +
      'FBUVFQwPFxgWFBgSFBUU/8AAFAgADAAQBEMRAE0RAFkRAEsRAP/EAB8AAAEFAQEBAQEBAAAAAAAAAAABAgMEBQYHCAkKC//E' +
      'ALUQAAIBAwMCBAMFBQQEAAABfQECAwAEEQUSITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBkaJSYnKCkqNDU2' +
      'Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6g4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrC' +
      'w8TFxsfIycrS09TV1tfY2drh4uPk5ebn6Onq8fLz9PX29/j5+v/aAA4EQwBNAFkASwAAPwD5t/ZzUT/2fuZmbKeYoJKHuOvJ' +
      '6g/T0rwgfsmC4niRdMVJWQbS4GfxyMnp17jNfO3wp+FsjKm1Q4VtrN/CVOBu7HGM8nPb0yP1Tr9Uf2b8r5IeR41IKqpLJvPU' +
      'nn6Z4I9Meof2RzLI1u1p5KED928YLAkgfLxzxz0619mfDD4WRTCJGjZS2D88YL+5/EcE9OD16gr8pP2dbgwPbbEjXL7MhRnA' +
      'ZgP0A/Kv1p/4VtoL28Q+x7EYHKodoP7sv298/gawvhZ4M0yJLcCNsSAbgcYPBbJ4or9W/wBnKEPBbPuYMPn4wBu25JxjHp+X' +
      'rk1FbfDfQrjyHktAWKbuw6y7cdOnzE//AFsivrn4ceG7BXt08kMNquC3ODuwB9Bngf0JyV//2Q==',
    rgb:
      'HBQTLBIdNgUVPwY0WwMyZgJEYg9PeQpIlglomwlftxNkyxh+0g907A94+AOV/wOJDRMOGS4hNy81OyUxSh8/Wi4zZh1bgyxO' +
      'lCJekSp0qBxyvyyAximY6yWS4iqU7x2gGTwiLD0eOT0lNTk3TC46VDpaaC5XjDZjijNjrTh0viaGuDSAwDaM1DSq+zOQ/yCj' +
      'ClUeH08zOEs7TlFVVlRFVUxKelJUfUJljVp/oFGCmk2NxD2E1Dmp6UyX90Sl+U+3AE8xJGQuO1w9SU9SXF1PWVdwbVxaiFdz' +
      'mFaNnFeDumyarVqly1Sa5mi59FO+/WvHHWlSIXFCPXRFQ2dSSGRnX3BZbW5tiHyCnG52mG2aq26Sy2mh23Cy64G263TD/X/H' +
      'D39JJXdEK4dLPIlqVIFwZ4l8Z41xhJSQioaPl4eRpHuXuIC20Yuz1pC7/4S7/YTVCZZBMKZXI59dR4heVJJ1XIuGdaGLhqWC' +
      'm6Sbpqanupu0y5GkzI61zpO/7pPa+KnVBqRUI6BQI7RhNq1oSr2BYrKLcLWGgqiLlbGYkqi3qr28zZ6p0KjP26O/5bLJ/6ja' +
      'FclcJ8BhNs90QcB0Wr6EZ72QdrSWhLSgnM2trbenodC0x8HTx7rF0cXb9LfN/8nxGNhgGttuOtx/O918V9KHXNeSbtife9qp' +
      'jNC8jtGwvdDLsdTO0dzi2sHQ5OD38dfsG912D/OFN+CRNvOTT+mfVd2lafayeui2iOC9rdrLsfPWxubQ3d3U3frx/uLq9/Tx',
  },
  gray16_png: {
    mode: 'I;16', width: 8, height: 6,
    file:
      'iVBORw0KGgoAAAANSUhEUgAAAAgAAAAGEAAAAACL/lxkAAAAZ0lEQVR4nGNkYGBQQYF8gmfWFcct+a9otGNi+qH/OgyLzn3I' +
      'O/Xt+gWx9mMfZ+WmyrOsVWPa2Wf0d/rJ7se1f+/G3GRhniFSz8Riv9ztlHXSd/8rdUzquQGPlL+mu3s6aXEcNvuxDwB6fSoV' +
      '9rr0/gAAAABJRU5ErkJggg==',
    rgb:
      'AAAAJCQkSEhIbGxskJCQtLS02NjY/Pz8////////////////////////////////////////////////////////////////' +
      '////////////////////////////////////////////////////////////////////////////////////////////////',
  },
  orient6_jpeg: {
    mode: 'RGB', width: 12, height: 16,
    file:
      '/9j/4AAQSkZJRgABAQAAAQABAAD/4QAiRXhpZgAATU0AKgAAAAgAAQESAAMAAAABAAYAAAAAAAD/2wBDAAMCAgICAgMCAgID' +
      'AwMDBAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsOCwkJDRENDg8QEBEQCgwSExIQEw8QEBD/2wBDAQMDAwQDBAgEBAgQCwkL' +
      'EBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBD/wAARCAAMABADASIAAhEBAxEB/8QA' +
      'HwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKB' +
      'kaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWG' +
      'h4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA' +
      'HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEI' +
      'FEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOE' +
      'hYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oA' +
      'DAMBAAIRAxEAPwD5+8F/AwTvboNPAcqo5x+GcjJ+vcZr3zwX8Cd7C3e2aJWGAjphsnHT14H9K9o8G+EdCEcCrZhVfgheAcKW' +
      '7e/6V734H8H6FKtu722W2b+3Uvjpj3/zzkyfM6kUmef4UeLGO9xpPp/W5//Z',
    rgb:
      'FN5wGNVuHcJkDqBLEJNHFIFAFmo4DkwlH00xGjclChQLExQPK+yDIthzIcBkG6RUKqNcGn5CJnJEKV89JEoxJTorLC0oIBcY' +
      'M+KDOt2EPsh6NKxlMJhbMYVTOnROOVxEN0w9OTs2PS4zJxAYSOiSQdSEQLx2QKpsNI5aR4tiQWxQQFVETFFLQjY6PyEtMgsd' +
      'V+efUdeSU8GEW7WCTplwToVmSmdVVVxVWlFWRyw7TiI5SBMvV9mZXtaZYcKPaLWLV5RzYox2YHBmXVdZYEpXXTVNYypKTgww' +
      'eOu0btajZreObq2ObZ2Fb4l8bG1vcV1pd1RqZjBQZh5GZRNBf+K0gtmverubfaqVhaSViJOPiXmEfFlvfEZmfjdhgipccQ5F' +
      'j9y4jtGymMWwl7Gkm6aijIKKjWqAmGGBmE96lDdsjyFehxBSpOPIlMixpMCym6aiqaSqoYaXnGmIpFuGp02BoTVznR5lnhZi' +
      'uunVut7QssG8uLO3s5+roXmTsG2WvWWYrEKCqy94syR2pAxjy+zhtczExcbIvau3uZituoSmv3Cgv1qWvESMvzSHximExB9+' +
      'zOHcztjZxbjCza3CxJW10o251HWvzVWcyUCSyzCOyx+FyhN/7PH11M/W3sPW0qTB0JK53Ii87Hq/62Sz4kmk5Tqi5yiZ2hOI' +
      '7+Xw79jq7L/c7KvT55jI9I7N9HTB8Vu09Uqw7zOj6xuV7BST/uz89Nft/8np967Z/qXb+YrM/3jI/2fE+0ey8y6i8xua6wqO',
  },
  rgb420_jpeg: {
    mode: 'RGB', width: 16, height: 12,
    file:
      '/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcp' +
      'LDAxNDQ0Hyc5PTgyPC4zNDL/2wBDAQkJCQwLDBgNDRgyIRwhMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIy' +
      'MjIyMjIyMjIyMjIyMjL/wAARCAAMABADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAA' +
      'AgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6' +
      'Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXG' +
      'x8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREA' +
      'AgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5' +
      'OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPE' +
      'xcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDj9O8M7ig8rnFddp3hjJ2lCo9CK6fTrC32' +
      'qAmAfT6ZrrtM0+3YISnOM/rRh6zMsiz2rof/2Q==',
    rgb:
      'ERAOHxYXLRkiNhQkQw8mVhAyaBI/dRFHhhJTlhJdqhZqvhl30BmB3BaF4xKJ5g+IGR4YJSUjNSktPyMvTB80XSA/byFJfR9R' +
      'kCJfnSFnryJxwSJ80yOG4iKP7CGU8SCVHTElLDkvPT45Rjo+VDVEZTVNeDdZgzVfmDpvozV0sTF7vzCC0C+M4TGU8DKc9zOh' +
      'HEIrKks2O09DR0xGVEhMZUlXd0phhEdonVB8p0p/s0aHwUON0kOV40Se8kao+0isFlMxJFs7NV9HQF1LTlpQYFpac1togVpv' +
      'mGGBpF2HsluQwVua1V2k6GGu92O5/2W9FGc5IXBDMXNNOm9RSmtWXW9jcnJygXF7jGyBmGqHqWuUvG6e03Gs5Xa49XnB/nvH' +
      'FYFFIYhQMIpXOYZaSoNiXYdvdIx+g4yHjYiOmYSTqIGcuIKmzIOx3oe87orG943LFJZOH5xYLZ5gNpliR5ZpW5t4dKKIg6KS' +
      'maqko6SorZysuZmxype42pnD6ZvL8J7PD6RTFKVWLbFoPbR0UrV+ZbiKbq+Nfa+WkLSmmK2osbS5ua27x6e/2azL4qjO9bfg' +
      'Fr1jHr5oMcR0P8V8UcWGYcSOa7yRd7qXj8OsmLyus8bCu77DyLrJ3L7W5rvZ9sfnIdNzKth5ONiAR9iJVtWQYtKXctCefsyk' +
      'k9K1ns+6utrPxNLS0s/Y5tXl7tHn/tr0I9x3MOKAON+FTOSRW+GYaNydfuKsh92wlNq4o9nBwefay9/d2dzh8OTw9t/z/+f9',
  },
  p_trns_png: {
    mode: 'P', width: 16, height: 12,
    file:
      'iVBORw0KGgoAAAANSUhEUgAAABAAAAAMBAMAAACZySCyAAAAMFBMVEXE39bJwcjnlMSllqJF5JNIxXtunIQkmVi9ap/DSJTn' +
      'HY+oInJfWVskYDlfHkYpJCMzVr2UAAAABHRSTlP///8AQCqp9AAAAFNJREFUeJwFwbENwjAQAMCz9QMwAR17exMmQPECiVKn' +
      'sVsimeeupOGTUwWFisVQ9pxWVwLeHt/AzdWi3cN6NXGjdyqTc6oOzl9m7PJ4bmXExCb9AT4GJVQPfa5KAAAAAElFTkSuQmCC',
    rgb:
      'KSQjKSQjKSQjKSQjXx5GXx5GXx5GXx5GqCJyqCJyqCJy5x2P5x2P5x2P5x2P5x2PKSQjKSQjKSQjKSQjXx5GXx5GXx5GXx5G' +
      'qCJyqCJyqCJyqCJy5x2P5x2P5x2P5x2PKSQjKSQjKSQjKSQjXx5GXx5GXx5GqCJyqCJyqCJyqCJyqCJyw0iUw0iU5x2P5x2P' +
      'JGA5JGA5JGA5X1lbX1lbX1lbX1lbX1lbX1lbw0iUw0iUw0iUw0iUw0iUw0iU5x2PJGA5JGA5JGA5X1lbX1lbX1lbX1lbX1lb' +
      'vWqfvWqfvWqfvWqfw0iUvWqfw0iU55TEJGA5JGA5JGA5X1lbX1lbX1lbX1lbbpyEvWqfvWqfvWqfvWqfvWqf55TE55TE55TE' +
      'JJlYJGA5JJlYJJlYbpyEbpyEbpyEbpyEbpyEpZaivWqfvWqf55TE55TE55TE55TEJJlYJJlYJJlYJJlYbpyEbpyEbpyEbpyE' +
      'pZaipZaipZaipZai55TE55TE55TE55TEJJlYJJlYJJlYJJlYSMV7bpyEbpyEbpyEpZaipZaiycHIpZaiycHI55TE55TE55TE' +
      'JJlYJJlYSMV7SMV7SMV7bpyEbpyEbpyEycHIpZaiycHIycHIycHIycHI55TEycHISMV7ReSTSMV7ReSTSMV7ReSTReSTReST' +
      'pZaiycHIxN/WxN/WxN/WycHIxN/WxN/WReSTReSTReSTReSTReSTReSTReSTReSTxN/WxN/WxN/WxN/WxN/WxN/WxN/WxN/W',
  },
  la_png: {
    mode: 'LA', width: 16, height: 12,
    file:
      'iVBORw0KGgoAAAANSUhEUgAAABAAAAAMCAQAAADB7vUKAAABl0lEQVR4nAGMAXP+ARz4DpQPeQCzIg0NnPunFswcbAirFHIc' +
      'BghoGFgM5Aa7AvH19XL/Gwlt7JHvVf/hC/8AH/MAAuTrvPCk/PTopvM6AgguCx/7De8ICjL93QoKCZ/4jhPVCZkFEfwF6dMb' +
      'Ew07BPm9+ewPYRPsC7r4Nwo08+ELqgA05RMbHxT+Fc76hwM9AvPi+EoCywHt+QgLav4ZAeIOjPzvFqz4FfRM/IL9RAOrAhyy' +
      'B/oBDPiC8I37PPfqC0ME6fmd74wZFxMzBPX+pwCMAu5uCTzrRvoGEfAOKf6o9lfrIwPE/+DpDvwN6TYKxwMfAQsuIbH7gxzL' +
      'ExMG4hg0EcYWbw1vEvwR+/pNC/0lcgBLBPyl9VYCh+0fDvAKP/kM/ZT74OkQBrkPjQwYCEP0ThYVBAywBgcRLRK7AGkDBwo4' +
      'ATcFCBLK9CgBcvMT/+AaUADJARqz/fsmS/bDJpoK9wwGDNcN6g+tIgf5YiU6AYcN6w7CAv9F+6b43wYz9UHy2vb4AFkFMw5W' +
      '92MSzf79B6gTmgQ1rlisYHDxn30AAAAASUVORK5CYII=',
    rgb:
      'HBwcKioqOTk5OTk5W1tbaGhoY2NjeXl5lZWVnZ2dsbGxzc3N1dXV7e3t+fn5////DQ0NHx8fODg4QkJCR0dHV1dXYmJihISE' +
      'lZWVkJCQs7OzuLi4xcXF6enp4eHh8vLyFRUVKioqMzMzMTExUVFRVFRUbGxsjY2NjY2No6OjvLy8vb29wcHB0tLS/Pz8////' +
      'Dg4OIyMjOTk5TExMXFxcVFRUdnZ2gICAi4uLo6OjoaGhvLy81dXV6urq9vb2+fn5AQEBGxsbOzs7TU1NVVVVX19fdHR0gYGB' +
      'mZmZn5+ft7e3tLS0ycnJ5ubm8/Pz/Pz8HR0dIiIiPDw8RUVFRUVFWlpaa2trjIyMnZ2dmJiYpqamzc3N3Nzc6urq8fHx/Pz8' +
      'CwsLKysrJycnPz8/VlZWaGhoaWlpgoKCiIiIm5ubpaWltra22NjY09PT+/v7////CwsLLCwsJycnQ0NDVlZWXFxcdHR0hYWF' +
      'm5ubqKiourq6y8vLxcXF0NDQ9fX19fX1BwcHISEhIyMjMDAwUVFRYGBgbW1tgoKClpaWkZGRrq6uycnJ0dHR2dnZ6enp////' +
      'ExMTJycnODg4SkpKUVFRY2Njd3d3g4ODm5ubqKiooqKiysrKxMTE0NDQ8/Pz////GhoaFxcXPT09MzMzWVlZY2Njb29ve3t7' +
      'iIiIl5eXubm5srKy19fX2NjY5eXl8/PzGRkZEhISNTU1OTk5Tk5OVVVVZWVle3t7jY2NpaWlsLCwxMTE1dXV39/f+Pj49/f3',
  },
};

describe('decodeImage', () => {
  let dir = '';
  const src = synthRgb(40, 30, 11);
  const flat = flatColours(24, 18);
  const enc = (img: RgbImage, channels = 3) => sharp(Buffer.from(img.data), rawInput(img, channels));
  const write = (name: string, bytes: Uint8Array): string => {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    return p;
  };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'gemma3-decode-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('every input form gives the same pixels', async () => {
    const path = join(IMAGES_DIR, 'square.png');
    const ref = await decodeImage(path);
    assert.equal(ref.width, 120);
    assert.equal(ref.height, 120);
    const buf = readFileSync(path);
    samePixels(await decodeImage(buf), ref, 'Buffer');
    samePixels(await decodeImage(new Uint8Array(buf)), ref, 'Uint8Array');
    samePixels(await decodeImage(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length)), ref, 'ArrayBuffer');
    samePixels(await decodeImage(`data:image/png;base64,${buf.toString('base64')}`), ref, 'data URL');
    samePixels(await decodeImage(`DATA:;base64,${buf.toString('base64')}`), ref, 'data URL without media type');
    samePixels(await decodeImage(pathToFileURL(path).href), ref, 'file URL');
    samePixels(await decodeImage(ref), ref, 'RgbImage');
    samePixels(await decodeImage({ data: ref.data, width: 120, height: 120, channels: 3 }), ref, 'raw RGB');
    samePixels(await decodeImage({ data: new Uint8ClampedArray(ref.data), width: 120, height: 120 }), ref, 'raw Uint8ClampedArray');
    const rgba = new Uint8Array(120 * 120 * 4);
    for (let i = 0; i < 120 * 120; i++) {
      rgba.set(ref.data.subarray(i * 3, i * 3 + 3), i * 4);
      rgba[i * 4 + 3] = i & 255;
    }
    samePixels(await decodeImage({ data: rgba, width: 120, height: 120, channels: 4 }), ref, 'raw RGBA (alpha dropped)');
    const grey = await decodeImage({ data: Uint8Array.from([0, 100, 255, 7]), width: 2, height: 2, channels: 1 });
    assert.deepEqual([...grey.data], [0, 0, 0, 100, 100, 100, 255, 255, 255, 7, 7, 7]);
    const la = await decodeImage({ data: Uint8Array.from([9, 0, 200, 255]), width: 2, height: 1, channels: 2 });
    assert.deepEqual([...la.data], [9, 9, 9, 200, 200, 200]);
    const pct = parseDataUrl('data:text/plain,a%20b%zz');
    assert.deepEqual([...pct], [...Buffer.from('a b%zz')]);
  });

  test('lossless formats decode exactly: PNG, WebP, TIFF, AVIF, GIF', async () => {
    const cases: [string, () => Promise<Buffer>, RgbImage][] = [
      ['png', () => enc(src).png().toBuffer(), src],
      ['webp', () => enc(src).webp({ lossless: true }).toBuffer(), src],
      ['tiff', () => enc(src).tiff({ compression: 'lzw' }).toBuffer(), src],
      ['avif', () => enc(src).avif({ lossless: true }).toBuffer(), src],
      ['gif', () => enc(flat).gif().toBuffer(), flat],
    ];
    for (const [name, make, want] of cases) {
      const bytes = await make();
      const p = write(`lossless-${name.replace(/\W+/g, '-')}`, bytes);
      samePixels(await decodeImage(p), want, name);
    }
  });

  test('embedded ICC profiles are ignored, as PIL does', async () => {
    // The P3 profile as sharp writes it, spliced as an iCCP chunk into a plain PNG of `src`.
    const p3 = (await sharp(await enc(flat).withIccProfile('p3').png().toBuffer()).metadata()).icc!;
    assert.ok(p3 && p3.length > 100);
    const plain = await enc(src).png().toBuffer();
    const iccp = pngChunk('iCCP', Buffer.concat([Buffer.from('Display P3\0\0', 'latin1'), deflateSync(p3)]));
    const tagged = Buffer.concat([plain.subarray(0, 33), iccp, plain.subarray(33)]);
    assert.equal((await sharp(tagged).metadata()).hasProfile, true);
    samePixels(await decodeImage(tagged), src, 'PNG with a P3 profile');
    const managed = await sharp(tagged).raw().toBuffer();
    assert.ok(meanAbsDiff(managed, src.data) > 0.5, 'a colour-managed decode would differ');
  });

  test('lossy formats decode close to the source: JPEG, WebP, AVIF', async () => {
    const cases: [string, () => Promise<Buffer>][] = [
      ['jpeg', () => enc(src).jpeg({ quality: 95 }).toBuffer()],
      ['progressive jpeg', () => enc(src).jpeg({ quality: 95, progressive: true }).toBuffer()],
      ['webp', () => enc(src).webp({ quality: 95 }).toBuffer()],
      ['avif', () => enc(src).avif({ quality: 90 }).toBuffer()],
    ];
    for (const [name, make] of cases) {
      const img = await decodeImage(await make());
      assert.equal(img.width, 40, name);
      assert.equal(img.height, 30, name);
      const d = meanAbsDiff(img.data, src.data);
      assert.ok(d < 8, `${name}: mean abs diff ${d}`);
    }
  });

  test('GIF: only the first frame', async () => {
    const frames = Buffer.concat([Buffer.from(flat.data), Buffer.from(new Uint8Array(flat.data.length).fill(255))]);
    const gif = await sharp(frames, { raw: { width: 24, height: 36, channels: 3, pageHeight: 18 } }).gif().toBuffer();
    const meta = await sharp(gif, { pages: -1 }).metadata();
    assert.equal(meta.pages, 2);
    samePixels(await decodeImage(gif), flat, 'first GIF frame');
  });

  test('grayscale, palette, 16-bit and CMYK are converted to RGB like PIL', async () => {
    // 8-bit grey PNG: replicated.
    const g = new Uint8Array(24 * 18);
    for (let i = 0; i < g.length; i++) g[i] = (i * 37) & 255;
    const grey = await decodeImage(await sharp(Buffer.from(g), { raw: { width: 24, height: 18, channels: 1 } }).png().toBuffer());
    for (let i = 0; i < g.length; i++) assert.deepEqual([...grey.data.subarray(i * 3, i * 3 + 3)], [g[i], g[i], g[i]]);
    // Palette PNG: expanded through the palette.
    const pal = await enc(flat).png({ palette: true, colours: 8, dither: 0 }).toBuffer();
    assert.equal((await sharp(pal).metadata()).isPalette, true);
    samePixels(await decodeImage(pal), flat, 'palette PNG');
    // 16-bit RGB PNG: the high byte (PIL's RGB;16B).
    const w16 = new Uint16Array(8 * 5 * 3);
    for (let i = 0; i < w16.length; i++) w16[i] = (i * 2654435761) >>> 16;
    const rgb16 = await sharp(w16, { raw: { width: 8, height: 5, channels: 3 } }).toColourspace('rgb16').png().toBuffer();
    assert.equal((await sharp(rgb16).metadata()).depth, 'ushort');
    const d16 = await decodeImage(rgb16);
    assert.deepEqual([...d16.data], [...w16].map((v) => v >> 8));
    // 16-bit grey PNG: PIL's I;16 -> RGB saturates at 255.
    const g16 = Uint16Array.from([0, 1, 200, 255, 256, 1000, 65535, 300]);
    const grey16 = await sharp(g16, { raw: { width: 4, height: 2, channels: 1 } }).toColourspace('grey16').png().toBuffer();
    assert.equal((await sharp(grey16).metadata()).space, 'grey16');
    const dg = await decodeImage(grey16);
    assert.deepEqual([...dg.data].filter((_, i) => i % 3 === 0), [0, 1, 200, 255, 255, 255, 255, 255]);
    // CMYK JPEG: Pillow's cmyk2rgb on the raw CMYK samples, no ICC conversion.
    const cmykJpeg = await enc(src).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer();
    assert.equal((await sharp(cmykJpeg).metadata()).space, 'cmyk');
    const raw = await sharp(cmykJpeg).pipelineColourspace('cmyk').toColourspace('cmyk').raw().toBuffer();
    const want = new Uint8Array(40 * 30 * 3);
    const md = (a: number, b: number): number => {
      const t = a * b + 128;
      return ((t >> 8) + t) >> 8;
    };
    for (let i = 0; i < 40 * 30; i++) {
      const nk = 255 - raw[i * 4 + 3]!;
      for (let c = 0; c < 3; c++) want[i * 3 + c] = Math.max(0, nk - md(raw[i * 4 + c]!, nk));
    }
    const dc = await decodeImage(cmykJpeg);
    samePixels(dc, { width: 40, height: 30, data: want }, 'CMYK JPEG');
  });

  test('PIL parity on Pillow 12.3-made files (CMYK JPEG, I;16 PNG, EXIF 6, 4:2:0 JPEG, P+tRNS, LA)', async () => {
    for (const [name, g] of Object.entries(PIL_GOLDENS)) {
      const img = await decodeImage(Buffer.from(g.file, 'base64'));
      samePixels(img, { width: g.width, height: g.height, data: new Uint8Array(Buffer.from(g.rgb, 'base64')) }, `${name} (PIL mode ${g.mode})`);
    }
  });

  test('RGBA: alpha is dropped, not composited (rgba_small.png)', async () => {
    const path = join(IMAGES_DIR, 'rgba_small.png');
    const { data: rgba, info } = await sharp(path).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.channels, 4);
    const img = await decodeImage(path);
    assert.equal(img.width, 37);
    assert.equal(img.height, 23);
    let translucent = 0;
    for (let i = 0; i < 37 * 23; i++) {
      assert.deepEqual([...img.data.subarray(i * 3, i * 3 + 3)], [...rgba.subarray(i * 4, i * 4 + 3)], `pixel ${i}`);
      if (rgba[i * 4 + 3]! < 250) translucent++;
    }
    assert.ok(translucent > 0, 'the fixture has translucent pixels');
    // One translucent pixel explicitly: the stored colour, not a blend with white or black.
    const i = [...Array(37 * 23).keys()].find((k) => rgba[k * 4 + 3]! < 128 && rgba[k * 4]! < 200)!;
    const a = rgba[i * 4 + 3]! / 255;
    const onWhite = Math.round(rgba[i * 4]! * a + 255 * (1 - a));
    assert.equal(img.data[i * 3], rgba[i * 4]);
    assert.notEqual(img.data[i * 3], onWhite);
  });

  test('EXIF orientation 6 is applied (rotated 90 degrees clockwise)', async () => {
    const jpeg = await enc(src).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toBuffer();
    assert.equal((await sharp(jpeg).metadata()).orientation, 6);
    const { data: stored } = await sharp(jpeg, { autoOrient: false }).raw().toBuffer({ resolveWithObject: true });
    const img = await decodeImage(jpeg);
    assert.equal(img.width, 30);
    assert.equal(img.height, 40);
    // Clockwise: output (x, y) = stored (y, H - 1 - x) with H = 30 stored rows.
    for (let y = 0; y < 40; y++) {
      for (let x = 0; x < 30; x++) {
        const s = ((29 - x) * 40 + y) * 3;
        const o = (y * 30 + x) * 3;
        assert.deepEqual([...img.data.subarray(o, o + 3)], [...stored.subarray(s, s + 3)], `(${x}, ${y})`);
      }
    }
  });

  test('errors carry the right GemmaError code', async () => {
    const png = await enc(src).png().toBuffer();
    const jpeg = await enc(src).jpeg({ quality: 90 }).toBuffer();
    await rejectsWith(decodeImage(join(dir, 'does-not-exist.png')), 'FILE_NOT_FOUND', /not found/);
    await rejectsWith(decodeImage(dir), 'INVALID_ARGUMENT', /directory/);
    await rejectsWith(decodeImage(write('empty.png', new Uint8Array(0))), 'BAD_FORMAT', /empty/);
    await rejectsWith(decodeImage(write('notes.txt', Buffer.from('hello, this is not an image\n'))), 'BAD_FORMAT', /plain text/);
    const svg = '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>';
    await rejectsWith(decodeImage(write('pic.svg', Buffer.from(svg))), 'BAD_FORMAT', /SVG/);
    await rejectsWith(decodeImage(Buffer.from('BM\x36\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00', 'latin1')), 'BAD_FORMAT', /BMP/);
    await rejectsWith(decodeImage(png.subarray(0, Math.floor(png.length / 2))), 'BAD_FORMAT', /truncated|corrupt/);
    await rejectsWith(decodeImage(jpeg.subarray(0, Math.floor(jpeg.length * 0.6))), 'BAD_FORMAT', /truncated|corrupt/);
    const junk = Buffer.concat([png.subarray(0, 8), Buffer.alloc(64, 0x5a)]);
    await rejectsWith(decodeImage(junk), 'BAD_FORMAT', /corrupt/);
    // Over the pixel limit: refused from the header alone. This PNG claims 100000 x 100000 pixels and
    // has no pixel data, so decoding anything would fail with BAD_FORMAT instead.
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(100000, 0);
    ihdr.writeUInt32BE(100000, 4);
    ihdr[8] = 8; // bit depth
    ihdr[9] = 2; // RGB
    const huge = Buffer.concat([png.subarray(0, 8), pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(Buffer.alloc(16))), pngChunk('IEND', Buffer.alloc(0))]);
    await rejectsWith(decodeImage(huge), 'INVALID_ARGUMENT', /100000x100000 = 10000000000 pixels, over the limit of 100000000/);
    await rejectsWith(decodeImage(png, { maxPixels: 40 * 30 - 1 }), 'INVALID_ARGUMENT', /1200 pixels, over the limit of 1199/);
    assert.equal((await decodeImage(png, { maxPixels: 40 * 30 })).width, 40);
    await rejectsWith(decodeImage({ data: new Uint8Array(0), width: 0, height: 0 }), 'INVALID_ARGUMENT', /zero-sized/);
    await rejectsWith(decodeImage({ data: new Uint8Array(5), width: 2, height: 1 }), 'INVALID_ARGUMENT', /expected/);
    await rejectsWith(decodeImage({ data: new Uint8Array(8), width: 2, height: 1, channels: 4 }, { maxPixels: 1 }), 'INVALID_ARGUMENT', /over the limit/);
    await rejectsWith(decodeImage({ data: new Uint8Array(10), width: 2, height: 1, channels: 5 }), 'INVALID_ARGUMENT', /channels/);
    await rejectsWith(decodeImage(''), 'INVALID_ARGUMENT');
    await rejectsWith(decodeImage(42 as unknown as string), 'INVALID_ARGUMENT', /must be a file path/);
    await rejectsWith(decodeImage('data:image/png;base64,@@@@'), 'INVALID_ARGUMENT', /base64/);
    await rejectsWith(decodeImage('data:image/png;base64'), 'INVALID_ARGUMENT', /malformed/);
    await rejectsWith(decodeImage('ftp://example.com/a.png'), 'INVALID_ARGUMENT', /scheme/);
    await rejectsWith(decodeImage('https://example.com/cat.png'), 'INVALID_ARGUMENT', /remote images are disabled/);
  });

  describe('remote URLs (local HTTP server)', () => {
    let server: Server;
    let base = '';
    let png: Buffer;
    before(async () => {
      png = await enc(src).png().toBuffer();
      server = createServer((req, res) => {
        if (req.url === '/img.png') {
          res.writeHead(200, { 'content-type': 'image/png' });
          res.end(png);
        } else if (req.url === '/chunked.png') {
          res.writeHead(200, { 'content-type': 'image/png' }); // no content-length
          res.write(png.subarray(0, 100));
          res.end(png.subarray(100));
        } else if (req.url === '/slow.png') {
          setTimeout(() => {
            if (!res.writableEnded) res.end(png);
          }, 3000).unref();
        } else {
          res.writeHead(404);
          res.end('missing');
        }
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const addr = server.address();
      base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    });
    after(() => {
      server.closeAllConnections();
      server.close();
    });

    test('fetches with allowRemote; limits and failures', async () => {
      samePixels(await decodeImage(`${base}/img.png`, { allowRemote: true }), src, 'remote PNG');
      samePixels(await decodeImage(`${base}/chunked.png`, { allowRemote: true }), src, 'remote PNG without content-length');
      await rejectsWith(decodeImage(`${base}/img.png`), 'INVALID_ARGUMENT', /remote images are disabled/);
      await rejectsWith(decodeImage(`${base}/nope.png`, { allowRemote: true }), 'FILE_NOT_FOUND', /404/);
      await rejectsWith(decodeImage(`${base}/img.png`, { allowRemote: true, maxBytes: 100 }), 'INVALID_ARGUMENT', /maxBytes=100/);
      await rejectsWith(decodeImage(`${base}/chunked.png`, { allowRemote: true, maxBytes: 100 }), 'INVALID_ARGUMENT', /maxBytes=100/);
      await rejectsWith(decodeImage(`${base}/slow.png`, { allowRemote: true, fetchTimeoutMs: 150 }), 'INVALID_ARGUMENT', /timed out after 150 ms/);
      const ctrl = new AbortController();
      setTimeout(() => ctrl.abort(), 50);
      await rejectsWith(decodeImage(`${base}/slow.png`, { allowRemote: true, signal: ctrl.signal }), 'ABORTED');
    });
  });
});

function pngChunk(type: string, data: Buffer): Buffer {
  const b = Buffer.alloc(12 + data.length);
  b.writeUInt32BE(data.length, 0);
  b.write(type, 4, 'latin1');
  data.copy(b, 8);
  b.writeUInt32BE(crc32(b.subarray(4, 8 + data.length)), 8 + data.length);
  return b;
}

/** CRC-32 (PNG chunk checksum). */
function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}
