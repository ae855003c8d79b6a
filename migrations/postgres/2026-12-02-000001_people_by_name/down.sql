DROP INDEX people_name;
