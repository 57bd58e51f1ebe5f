//! A project folder for the commands that read more than the migrations (autogenerate,
//! `diff`, `check --against-schema`, `lint`): `schema.sql` beside a `migrations/` folder,
//! run with the shared test cluster as the scratch server.

use std::path::PathBuf;

use super::Cluster;
use super::run::{Folder, Outcome, Run};

pub struct Project {
    pub root: Folder,
}

impl Project {
    /// An empty `migrations/` folder and no schema file.
    pub fn new() -> Project {
        let root = Folder::new();
        std::fs::create_dir_all(root.path().join("migrations")).expect("migrations folder");
        Project { root }
    }

    /// An empty `migrations/` folder beside `schema.sql` holding `schema`.
    pub fn with_schema(schema: &str) -> Project {
        let project = Project::new();
        project.schema(schema);
        project
    }

    pub fn migrations(&self) -> PathBuf {
        self.root.path().join("migrations")
    }

    pub fn schema(&self, text: &str) {
        self.root.write("schema.sql", text);
    }

    /// Writes the migration `name`.
    pub fn write(&self, name: &str, text: &str) {
        self.root.write(&format!("migrations/{name}"), text);
    }

    /// The migration files, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.migrations())
            .expect("read migrations")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.migrations().join(name)).expect("read migration")
    }

    /// A run with the project's folders, the test cluster as the scratch server and
    /// `database` (if any) as the configured one.
    pub fn run(&self, database: Option<&str>, args: &[&str]) -> Outcome {
        let cluster = Cluster::shared();
        let mut run = Run::new(args);
        run.env(
            "SCHEMAGATE_MIGRATIONS",
            self.migrations().to_str().expect("utf-8"),
        )
        .env("SCHEMAGATE_DEV_URL", &cluster.url("postgres"));
        if let Some(db) = database {
            run.env("DATABASE_URL", &cluster.url(db));
        }
        run.run()
    }
}

impl Default for Project {
    fn default() -> Self {
        Project::new()
    }
}
