//! Startup as a type: `Application::build` wires the store, renderer, scheduler and web
//! server; `main` and the tests start it the same way.
