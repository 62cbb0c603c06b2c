//! The `bench` binary: parses the command line and hands over to
//! [`bench::cli::main`].

fn main() -> std::process::ExitCode {
    bench::cli::main()
}
