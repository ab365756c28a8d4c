//! Change events over SSE and WebSocket (issue 7).
