"""The app's panels: each `render(...)` draws what a `app.logic` function returned."""
