// The same text goldens on the native backend (skipped with a notice when the addon is not built).
process.env.GEMMA3_TEST_BACKEND = 'native';
await import('./model-text.test.js');
