import './lib.mjs';
