// Checks a JSON schema before xgrammar sees it. xgrammar silently ignores the keywords it does
// not implement (uniqueItems, multipleOf, not, if/then/else, contains, allOf with several parts,
// minLength next to pattern...), which would let through output that breaks the schema, and it
// aborts its WebAssembly instance on some malformed schemas (an unknown type, a dangling $ref, a
// regular expression with lookbehind). So every keyword must be on the list below, where each one
// is either enforced by xgrammar (checked by test/grammar.test.ts) or an annotation without
// effect on validity; anything else is refused with its path named.
import { GemmaError } from '../errors.js';

/** Keywords xgrammar enforces when it builds the grammar. */
const ENFORCED = new Set([
  'type', 'enum', 'const', 'anyOf', 'oneOf', 'allOf', '$ref', '$defs', 'definitions',
  'properties', 'required', 'additionalProperties', 'patternProperties', 'propertyNames', 'minProperties', 'maxProperties',
  'items', 'prefixItems', 'minItems', 'maxItems',
  'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum',
  'minLength', 'maxLength', 'pattern', 'format',
]);

/** Keywords that do not constrain values. */
const ANNOTATIONS = new Set([
  'title', 'description', 'default', 'examples', 'example', '$schema', '$id', '$comment', 'deprecated', 'readOnly', 'writeOnly',
  'strict', // sometimes nested by OpenAI clients; has no meaning inside a schema
]);

const TYPES = new Set(['string', 'integer', 'number', 'boolean', 'null', 'object', 'array']);

/** String formats xgrammar turns into a grammar (others would be accepted as any string). */
export const SUPPORTED_FORMATS = ['email', 'date', 'time', 'date-time', 'uuid', 'uri', 'ipv4', 'ipv6', 'hostname'] as const;

/** Most nesting levels of a schema (a bound on the work and on recursion depth). */
const MAX_DEPTH = 64;

export class SchemaError extends GemmaError {
  /** Where in the schema, e.g. "properties.age.multipleOf" ('' = the schema itself). */
  readonly path: string;
  constructor(path: string, message: string) {
    super('INVALID_ARGUMENT', message);
    this.path = path;
  }
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Throws SchemaError naming the keyword and its path when `schema` is not a JSON schema this
 * engine enforces exactly. `where` prefixes the path in messages (e.g. 'schema').
 */
export function checkJsonSchema(schema: unknown, where = 'schema'): void {
  if (!isObj(schema)) {
    if (schema === true) return; // any value
    if (schema === false) throw new SchemaError('', `${where} is false, which accepts no value, so nothing can be generated`);
    throw new SchemaError('', `${where} must be a JSON schema object, got ${schema === null ? 'null' : Array.isArray(schema) ? 'an array' : typeof schema}`);
  }
  new Checker(schema, where).node(schema, [], 0);
}

class Checker {
  constructor(private readonly root: Obj, private readonly where: string) {}

  private fail(path: readonly string[], message: string): never {
    const p = path.join('.');
    throw new SchemaError(p, `${this.where}${p ? '.' + p : ''}: ${message}`);
  }

  node(s: unknown, path: string[], depth: number): void {
    if (depth > MAX_DEPTH) this.fail(path, `the schema nests deeper than ${MAX_DEPTH} levels`);
    if (s === true) return;
    if (s === false) this.fail(path, 'the schema false accepts no value, so nothing can be generated');
    if (!isObj(s)) this.fail(path, 'a schema must be an object or true');
    for (const key of Object.keys(s)) {
      if (ENFORCED.has(key) || ANNOTATIONS.has(key)) continue;
      this.fail([...path, key], `the keyword '${key}' is not supported (it cannot be enforced while generating); ` +
        'supported: ' + [...ENFORCED].join(', '));
    }
    const sub = (v: unknown, ...more: string[]) => this.node(v, [...path, ...more], depth + 1);
    const list = (key: string, min = 1): unknown[] => {
      const v = s[key];
      if (!Array.isArray(v) || v.length < min) this.fail([...path, key], `'${key}' must be an array of at least ${min} schema${min === 1 ? '' : 's'}`);
      return v;
    };
    if (s.type !== undefined) {
      const types = Array.isArray(s.type) ? s.type : [s.type];
      if (types.length === 0) this.fail([...path, 'type'], "'type' must not be an empty array");
      for (const t of types) {
        if (typeof t !== 'string' || !TYPES.has(t)) this.fail([...path, 'type'], `unknown type ${JSON.stringify(t)}; use one of ${[...TYPES].join(', ')}`);
      }
    }
    if (s.enum !== undefined && !(Array.isArray(s.enum) && s.enum.length > 0)) this.fail([...path, 'enum'], "'enum' must be a non-empty array");
    for (const key of ['anyOf', 'oneOf']) if (s[key] !== undefined) list(key).forEach((x, i) => sub(x, key, String(i)));
    if (s.allOf !== undefined) {
      const parts = list('allOf');
      if (parts.length > 1) this.fail([...path, 'allOf'], "'allOf' with more than one schema is not supported (merge them into one schema)");
      sub(parts[0], 'allOf', '0');
    }
    for (const key of ['$defs', 'definitions']) {
      if (s[key] === undefined) continue;
      if (!isObj(s[key])) this.fail([...path, key], `'${key}' must be an object of schemas`);
      for (const [name, d] of Object.entries(s[key] as Obj)) sub(d, key, name);
    }
    if (s.$ref !== undefined) this.ref(s.$ref, [...path, '$ref']);
    if (s.properties !== undefined) {
      if (!isObj(s.properties)) this.fail([...path, 'properties'], "'properties' must be an object of schemas");
      for (const [name, p] of Object.entries(s.properties)) sub(p, 'properties', name);
    }
    if (s.required !== undefined && !(Array.isArray(s.required) && s.required.every((r) => typeof r === 'string'))) {
      this.fail([...path, 'required'], "'required' must be an array of property names");
    }
    if (Array.isArray(s.required) && isObj(s.properties) && s.additionalProperties === false) {
      const missing = (s.required as string[]).find((r) => !Object.hasOwn(s.properties as Obj, r));
      if (missing !== undefined) this.fail([...path, 'required'], `'${missing}' is required but not in 'properties' and additionalProperties is false: no object can match`);
    }
    if (s.additionalProperties !== undefined && typeof s.additionalProperties !== 'boolean') sub(s.additionalProperties, 'additionalProperties');
    if (s.patternProperties !== undefined) {
      if (!isObj(s.patternProperties)) this.fail([...path, 'patternProperties'], "'patternProperties' must be an object of schemas");
      for (const [pattern, p] of Object.entries(s.patternProperties)) {
        checkPattern(pattern, (m) => this.fail([...path, 'patternProperties'], m));
        sub(p, 'patternProperties', pattern);
      }
    }
    if (s.propertyNames !== undefined) sub(s.propertyNames, 'propertyNames');
    if (s.items !== undefined && typeof s.items !== 'boolean') sub(s.items, 'items');
    if (s.prefixItems !== undefined) list('prefixItems').forEach((x, i) => sub(x, 'prefixItems', String(i)));
    for (const [lo, hi] of [['minItems', 'maxItems'], ['minProperties', 'maxProperties'], ['minLength', 'maxLength']] as const) {
      for (const key of [lo, hi]) {
        const v = s[key];
        if (v !== undefined && !(typeof v === 'number' && Number.isInteger(v) && v >= 0)) this.fail([...path, key], `'${key}' must be an integer >= 0`);
      }
      if (typeof s[lo] === 'number' && typeof s[hi] === 'number' && (s[lo] as number) > (s[hi] as number)) {
        this.fail([...path, lo], `'${lo}' (${s[lo] as number}) is above '${hi}' (${s[hi] as number}): no value can match`);
      }
    }
    for (const key of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']) {
      const v = s[key];
      if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v))) this.fail([...path, key], `'${key}' must be a number`);
    }
    if (s.pattern !== undefined) {
      if (typeof s.pattern !== 'string') this.fail([...path, 'pattern'], "'pattern' must be a string");
      checkPattern(s.pattern, (m) => this.fail([...path, 'pattern'], m));
      for (const key of ['minLength', 'maxLength', 'format']) {
        if (s[key] !== undefined) this.fail([...path, key], `'${key}' together with 'pattern' is not supported (put the length into the pattern, e.g. ^[a-z]{1,8}$)`);
      }
    }
    if (s.format !== undefined) {
      if (typeof s.format !== 'string' || !(SUPPORTED_FORMATS as readonly string[]).includes(s.format)) {
        this.fail([...path, 'format'], `the format ${JSON.stringify(s.format)} is not supported; supported: ${SUPPORTED_FORMATS.join(', ')}`);
      }
      for (const key of ['minLength', 'maxLength']) {
        if (s[key] !== undefined) this.fail([...path, key], `'${key}' together with 'format' is not supported`);
      }
    }
  }

  /** Local references only ('#', '#/$defs/x', '#/definitions/x', or any path into this schema) that resolve. */
  private ref(ref: unknown, path: string[]): void {
    if (typeof ref !== 'string') this.fail(path, "'$ref' must be a string");
    if (!ref.startsWith('#')) this.fail(path, `only local references ('#/$defs/name') are supported, got ${JSON.stringify(ref)}`);
    let at: unknown = this.root;
    for (const raw of ref.slice(1).split('/').slice(1)) {
      const part = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
      if (!isObj(at) || !Object.hasOwn(at, part)) this.fail(path, `the reference ${JSON.stringify(ref)} does not resolve (no '${part}')`);
      at = at[part];
    }
  }
}

/**
 * Refuses regular-expression features xgrammar's converter does not implement (it would abort):
 * lookaround, backreferences, word boundaries, \p{...} classes, group flags.
 */
function checkPattern(pattern: string, fail: (message: string) => never): void {
  const unsupported: [RegExp, string][] = [
    [/\(\?<?[=!]/, 'lookahead and lookbehind'],
    [/\\[1-9]|\\k</, 'backreferences'],
    [/\\[bB]/, 'word boundaries (\\b)'],
    [/\\[pP]\{/, 'Unicode property classes (\\p{...})'],
    [/\(\?(?![:=!<])/, 'group flags (?i) etc.'],
    [/\(\?<(?![=!])/, 'named groups'],
  ];
  try {
    new RegExp(pattern, 'u');
  } catch (err) {
    fail(`the pattern ${JSON.stringify(pattern)} is not a valid regular expression: ${(err as Error).message}`);
  }
  for (const [re, what] of unsupported) {
    if (re.test(pattern)) fail(`the pattern ${JSON.stringify(pattern)} uses ${what}, which is not supported`);
  }
}
