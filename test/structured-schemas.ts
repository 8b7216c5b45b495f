// JSON schemas of real-world shapes for the structured-output tests. With random weights an
// unbounded string never ends (any of ~250k tokens may follow, few close it), so every string
// here is bounded: maxLength, enum, const, pattern or a fixed-length format. maxLength costs
// compile time (about 0.1 s per character over Gemma's vocabulary), patterns almost none.
export interface NamedSchema {
  name: string;
  schema: Record<string, unknown>;
}

const word = (n = 6) => ({ type: 'string', pattern: `^[a-z]{1,${n}}$` });
const short = (n = 4) => ({ type: 'string', maxLength: n });

export const SCHEMAS: NamedSchema[] = [
  { name: 'person', schema: { type: 'object', properties: { name: word(), age: { type: 'integer', minimum: 0, maximum: 120 } }, required: ['name', 'age'], additionalProperties: false } },
  { name: 'weather', schema: { type: 'object', properties: { city: word(8), unit: { enum: ['celsius', 'fahrenheit'] }, temperature: { type: 'integer', minimum: -60, maximum: 60 } }, required: ['city', 'unit', 'temperature'] } },
  { name: 'sentiment', schema: { type: 'object', properties: { label: { enum: ['positive', 'negative', 'neutral'] }, confidence: { type: 'number', minimum: 0, maximum: 1 } }, required: ['label', 'confidence'] } },
  { name: 'todo_list', schema: { type: 'object', properties: { items: { type: 'array', items: { type: 'object', properties: { title: word(), done: { type: 'boolean' } }, required: ['title', 'done'] }, minItems: 1, maxItems: 3 } }, required: ['items'] } },
  { name: 'address', schema: { type: 'object', properties: { street: word(), number: { type: 'integer', minimum: 1, maximum: 9999 }, zip: { type: 'string', pattern: '^[0-9]{5}$' }, country: { enum: ['US', 'DE', 'FR', 'JP'] } }, required: ['street', 'number', 'zip', 'country'] } },
  { name: 'order', schema: { type: 'object', properties: { id: { type: 'string', pattern: '^ORD-[0-9]{4}$' }, lines: { type: 'array', items: { type: 'object', properties: { sku: { type: 'string', pattern: '^[A-Z]{3}[0-9]{2}$' }, qty: { type: 'integer', minimum: 1, maximum: 99 } }, required: ['sku', 'qty'] }, minItems: 1, maxItems: 2 }, paid: { type: 'boolean' } }, required: ['id', 'lines', 'paid'] } },
  { name: 'nested_company', schema: { type: 'object', properties: { company: { type: 'object', properties: { name: word(), ceo: { type: 'object', properties: { first: word(5), last: word(5) }, required: ['first', 'last'] } }, required: ['name', 'ceo'] } }, required: ['company'] } },
  { name: 'event_date', schema: { type: 'object', properties: { title: word(), date: { type: 'string', format: 'date' }, start: { type: 'string', format: 'time' } }, required: ['title', 'date', 'start'] } },
  { name: 'uuid_record', schema: { type: 'object', properties: { id: { type: 'string', format: 'uuid' }, active: { type: 'boolean' } }, required: ['id', 'active'] } },
  { name: 'rgb_color', schema: { type: 'object', properties: { r: { type: 'integer', minimum: 0, maximum: 255 }, g: { type: 'integer', minimum: 0, maximum: 255 }, b: { type: 'integer', minimum: 0, maximum: 255 } }, required: ['r', 'g', 'b'] } },
  { name: 'tags', schema: { type: 'object', properties: { tags: { type: 'array', items: { enum: ['red', 'green', 'blue', 'black'] }, minItems: 2, maxItems: 4 } }, required: ['tags'] } },
  { name: 'point_tuple', schema: { type: 'object', properties: { point: { type: 'array', prefixItems: [{ type: 'integer', minimum: -9, maximum: 9 }, { type: 'integer', minimum: -9, maximum: 9 }], items: false, minItems: 2, maxItems: 2 } }, required: ['point'] } },
  { name: 'any_of_shape', schema: { type: 'object', properties: { shape: { anyOf: [
    { type: 'object', properties: { kind: { const: 'circle' }, radius: { type: 'integer', minimum: 1, maximum: 10 } }, required: ['kind', 'radius'] },
    { type: 'object', properties: { kind: { const: 'square' }, side: { type: 'integer', minimum: 1, maximum: 10 } }, required: ['kind', 'side'] },
  ] } }, required: ['shape'] } },
  { name: 'nullable_field', schema: { type: 'object', properties: { nickname: { anyOf: [word(5), { type: 'null' }] }, score: { type: ['integer', 'null'], minimum: 0, maximum: 10 } }, required: ['nickname', 'score'] } },
  { name: 'defs_ref', schema: { $defs: { money: { type: 'object', properties: { amount: { type: 'integer', minimum: 0, maximum: 1000 }, currency: { enum: ['USD', 'EUR'] } }, required: ['amount', 'currency'] } }, type: 'object', properties: { price: { $ref: '#/$defs/money' }, tax: { $ref: '#/$defs/money' } }, required: ['price', 'tax'] } },
  { name: 'definitions_ref', schema: { definitions: { id: { type: 'string', pattern: '^[0-9]{3}$' } }, type: 'object', properties: { ids: { type: 'array', items: { $ref: '#/definitions/id' }, minItems: 1, maxItems: 3 } }, required: ['ids'] } },
  { name: 'optional_props', schema: { type: 'object', properties: { a: { type: 'boolean' }, b: { type: 'integer', minimum: 0, maximum: 5 }, c: word(4) }, required: ['a'] } },
  { name: 'all_optional', schema: { type: 'object', properties: { x: { type: 'integer', minimum: 0, maximum: 9 }, y: { type: 'boolean' } } } },
  { name: 'short_strings', schema: { type: 'object', properties: { code: short(3), note: short(4) }, required: ['code', 'note'] } },
  { name: 'matrix', schema: { type: 'object', properties: { rows: { type: 'array', items: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 9 }, minItems: 2, maxItems: 2 }, minItems: 2, maxItems: 2 } }, required: ['rows'] } },
  { name: 'classification', schema: { type: 'object', properties: { category: { enum: ['bug', 'feature', 'question'] }, priority: { type: 'integer', minimum: 1, maximum: 5 }, labels: { type: 'array', items: { enum: ['ui', 'api', 'docs'] }, maxItems: 2 } }, required: ['category', 'priority', 'labels'] } },
  { name: 'boolean_flags', schema: { type: 'object', properties: { admin: { type: 'boolean' }, verified: { type: 'boolean' }, banned: { type: 'boolean' } }, required: ['admin', 'verified', 'banned'] } },
  { name: 'exclusive_range', schema: { type: 'object', properties: { pct: { type: 'integer', exclusiveMinimum: 0, exclusiveMaximum: 100 } }, required: ['pct'] } },
  { name: 'number_range', schema: { type: 'object', properties: { lat: { type: 'number', minimum: -90, maximum: 90 }, lon: { type: 'number', minimum: -180, maximum: 180 } }, required: ['lat', 'lon'] } },
  { name: 'top_level_array', schema: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 99 }, minItems: 1, maxItems: 4 } },
  { name: 'top_level_enum', schema: { enum: ['yes', 'no', 'maybe'] } },
  { name: 'recursive_tree', schema: { $defs: { node: { type: 'object', properties: { v: { type: 'integer', minimum: 0, maximum: 9 }, kids: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 1 } }, required: ['v', 'kids'] } }, $ref: '#/$defs/node' } },
  { name: 'extraction', schema: { type: 'object', properties: { people: { type: 'array', items: { type: 'object', properties: { name: word(5), role: { enum: ['author', 'editor'] } }, required: ['name', 'role'] }, minItems: 1, maxItems: 2 }, year: { type: 'integer', minimum: 1900, maximum: 2030 } }, required: ['people', 'year'] } },
  { name: 'one_of_payment', schema: { type: 'object', properties: { payment: { oneOf: [
    { type: 'object', properties: { method: { const: 'card' }, last4: { type: 'string', pattern: '^[0-9]{4}$' } }, required: ['method', 'last4'], additionalProperties: false },
    { type: 'object', properties: { method: { const: 'cash' } }, required: ['method'], additionalProperties: false },
  ] } }, required: ['payment'] } },
  { name: 'map_of_counts', schema: { type: 'object', additionalProperties: { type: 'integer', minimum: 0, maximum: 9 }, propertyNames: { pattern: '^[a-z]{1,3}$' }, maxProperties: 3 } },
  { name: 'min_properties', schema: { type: 'object', properties: { a: { type: 'boolean' }, b: { type: 'boolean' }, c: { type: 'boolean' } }, minProperties: 2 } },
  { name: 'described_openai_strict', schema: { type: 'object', title: 'Answer', description: 'An answer with its steps', properties: { steps: { type: 'array', description: 'the steps', items: { type: 'string', pattern: '^[a-z ]{1,6}$' }, minItems: 1, maxItems: 2 }, final: { type: 'integer', minimum: 0, maximum: 100 } }, required: ['steps', 'final'], additionalProperties: false } },
  { name: 'const_version', schema: { type: 'object', properties: { version: { const: 2 }, kind: { const: 'report' }, ok: { type: 'boolean' } }, required: ['version', 'kind', 'ok'] } },
];
