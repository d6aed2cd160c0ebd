//! The terminal: crossterm through ratatui, with one change for serial
//! consoles. ratatui asks the terminal where its cursor is (`ESC [ 6n`)
//! when it clears; a serial console with nobody's terminal emulator on the
//! other end (a BMC log, a test harness) never answers, and the question
//! times out as an error. This backend remembers where it put the cursor
//! instead of asking.

use std::io::Stdout;

use ratatui::backend::{Backend, ClearType, CrosstermBackend, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};

pub struct Term {
    inner: CrosstermBackend<Stdout>,
    cursor: Position,
}

impl Term {
    pub fn new() -> Term {
        Term {
            inner: CrosstermBackend::new(std::io::stdout()),
            cursor: Position::ORIGIN,
        }
    }
}

impl Backend for Term {
    type Error = std::io::Error;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        self.inner.draw(content)
    }

    fn hide_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.show_cursor()
    }

    fn get_cursor_position(&mut self) -> Result<Position, Self::Error> {
        Ok(self.cursor)
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), Self::Error> {
        let p = position.into();
        self.cursor = p;
        self.inner.set_cursor_position(p)
    }

    fn clear(&mut self) -> Result<(), Self::Error> {
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Self::Error> {
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> Result<Size, Self::Error> {
        self.inner.size()
    }

    fn window_size(&mut self) -> Result<WindowSize, Self::Error> {
        self.inner.window_size()
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Backend::flush(&mut self.inner)
    }
}

/// Raw mode, the alternate screen, and a panic hook that restores the
/// terminal before the panic message is printed.
pub fn init(viewport: ratatui::Viewport) -> std::io::Result<ratatui::Terminal<Term>> {
    ratatui::crossterm::terminal::enable_raw_mode()?;
    ratatui::crossterm::execute!(
        std::io::stdout(),
        ratatui::crossterm::terminal::EnterAlternateScreen
    )?;
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        ratatui::restore();
        prev(info);
    }));
    ratatui::Terminal::with_options(Term::new(), ratatui::TerminalOptions { viewport })
}

/// Raw mode and the alternate screen again, after a shell.
pub fn resume() -> std::io::Result<()> {
    ratatui::crossterm::terminal::enable_raw_mode()?;
    ratatui::crossterm::execute!(
        std::io::stdout(),
        ratatui::crossterm::terminal::EnterAlternateScreen
    )
}
